// Tiny argv parser: --name value, --name=value, --flag, --no-flag.

export function parseArgs(argv, spec) {
  const out = {}
  for (const [name, def] of Object.entries(spec)) out[name] = def.default
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i]
    if (!arg.startsWith('--')) throw new Error(`unexpected argument '${arg}'`)
    arg = arg.slice(2)
    let value
    const eq = arg.indexOf('=')
    if (eq !== -1) {
      value = arg.slice(eq + 1)
      arg = arg.slice(0, eq)
    }
    let negated = false
    if (!(arg in spec) && arg.startsWith('no-') && spec[arg.slice(3)]?.type === 'boolean') {
      arg = arg.slice(3)
      negated = true
    }
    const def = spec[arg]
    if (!def) throw new Error(`unknown option --${arg}`)
    if (def.type === 'boolean') {
      out[arg] = negated ? false : value === undefined ? true : value !== 'false'
      continue
    }
    if (value === undefined) {
      value = argv[++i]
      if (value === undefined) throw new Error(`--${arg} needs a value`)
    }
    if (def.type === 'number') {
      const n = Number(value.replace(/[_,]/g, ''))
      if (!Number.isFinite(n) || n <= 0) throw new Error(`--${arg} must be a positive number`)
      out[arg] = n
    } else if (def.type === 'list') {
      out[arg] = value.split(',').map((s) => s.trim()).filter(Boolean)
    } else {
      out[arg] = value
    }
  }
  return out
}

export function usage(spec) {
  return Object.entries(spec)
    .map(([name, d]) => {
      const flag = `  --${name}${d.type === 'boolean' ? '' : ` <${d.type}>`}`
      const shown = d.default !== undefined && d.default !== false
      return `${flag.padEnd(31)} ${d.help}${shown ? ` (default ${Array.isArray(d.default) ? d.default.join(',') : d.default})` : ''}`
    })
    .join('\n')
}

export function envNumber(name, fallback) {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number`)
  return n
}
