// Types for `import` (the "import" condition, index.mjs). index.d.ts is the
// only source of the declarations: this file re-exports it, so ESM and
// CommonJS users get the same types and the same classes, and an edit there
// needs nothing here. (One index.d.ts for both conditions made TypeScript read
// the ESM entry as CommonJS: "Masquerading as CJS".)
export * from './index.js'
import store from './index.js'
// index.mjs also exports the CommonJS module object as its default export.
export default store
