// Reads interface fields and their JSDoc out of a .d.ts file (the shapes
// this repository writes: `/** doc */` above `  name?: type`).

/** `Map<field, doc>` of `interface name` in `source` (own fields only); doc whitespace-normalised. */
export function interfaceFields(source, name) {
  const start = source.search(new RegExp(`^export (?:declare )?interface ${name}\\b[^{]*\\{`, 'm'))
  if (start < 0) throw new Error(`interface ${name} not found`)
  const fields = new Map()
  let doc = ''
  let inDoc = false
  for (const line of source.slice(source.indexOf('{', start) + 1).split('\n')) {
    if (/^\}/.test(line)) break
    const text = line.trim()
    if (text.startsWith('/**')) {
      inDoc = true
      doc = ''
    }
    if (inDoc) {
      doc += ` ${text.replace(/^\/\*\*|\*\/$|^\*/g, '').trim()}`
      if (text.endsWith('*/')) inDoc = false
      continue
    }
    const field = /^(\w+)\??:/.exec(text)
    if (field) {
      fields.set(field[1], doc.replace(/\s+/g, ' ').trim())
      doc = ''
    }
  }
  return fields
}
