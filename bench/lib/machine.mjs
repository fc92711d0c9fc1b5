// What the numbers were measured on.

import { readdirSync, readFileSync, statSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

export function machineInfo() {
  const cpus = os.cpus()
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model?.trim() ?? 'unknown',
    totalMemoryMB: Math.round(os.totalmem() / 1024 / 1024),
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    addon: addonInfo(),
  }
}

/** The addon file next to binding.js and whether it is a debug build (ELF with .debug_info). */
export function addonInfo() {
  const file = readdirSync(ROOT).find((name) => name.startsWith('postgres-store.') && name.endsWith('.node'))
  if (!file) return { file: null, build: 'unknown (no local .node file; an installed platform package is used)' }
  const full = path.join(ROOT, file)
  const stat = statSync(full)
  let build = 'unknown'
  try {
    build = elfHasSection(readFileSync(full), '.debug_info') ? 'debug (has .debug_info)' : 'release (no debug info)'
  } catch {
    // not ELF
  }
  return { file, sizeMB: Math.round((stat.size / 1024 / 1024) * 10) / 10, modified: stat.mtime.toISOString(), build }
}

function elfHasSection(buf, wanted) {
  if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) throw new Error('not a 64-bit LE ELF')
  const shoff = Number(buf.readBigUInt64LE(0x28))
  const shentsize = buf.readUInt16LE(0x3a)
  const shnum = buf.readUInt16LE(0x3c)
  const shstrndx = buf.readUInt16LE(0x3e)
  const strtab = shoff + shstrndx * shentsize
  const strOffset = Number(buf.readBigUInt64LE(strtab + 0x18))
  for (let i = 0; i < shnum; i++) {
    const nameOffset = buf.readUInt32LE(shoff + i * shentsize)
    const start = strOffset + nameOffset
    const end = buf.indexOf(0, start)
    if (buf.toString('latin1', start, end) === wanted) return true
  }
  return false
}
