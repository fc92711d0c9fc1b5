// Runs a command as a child process, for tests that drive CLIs (node, npm, tar).

import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/**
 * Runs `command` with `args`; resolves to { code, stdout, stderr } and never
 * rejects on a non-zero exit (only when the command cannot start). Killed
 * after `timeoutMillis`.
 */
export function run(command, args, { env = process.env, cwd = ROOT, timeoutMillis = 60000, input, shell = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, cwd, shell, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMillis)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code: code ?? (signal ? `signal ${signal}` : null), stdout, stderr })
    })
    // A child that exits without reading its stdin (cp, git) makes the write fail with EPIPE: not an error here.
    child.stdin.on('error', () => {})
    child.stdin.end(input ?? '')
  })
}
