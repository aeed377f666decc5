// Builds backend.js into a WebAssembly component (plugin.wasm) with
// ComponentizeJS. The componentize-js and jco CLIs fail here with
// "failed to get path metadata ... (os error 44)": the preview2-shim they
// run under starts with no directories opened. Opening `/` first and calling
// the API directly works.
//
// Usage: node build.mjs [OUTPUT.wasm]   (default: plugin.wasm)

import { writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { _setPreopens } from '@bytecodealliance/preview2-shim/filesystem';
import { componentize } from '@bytecodealliance/componentize-js';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? resolve(here, 'plugin.wasm'));

_setPreopens({ '/': '/' });
const started = Date.now();
const { component } = await componentize({
  sourcePath: resolve(here, 'backend.js'),
  witPath: resolve(here, '../../wit/proxy-0.2.wit'),
  worldName: 'proxy-backend-with-admin',
  // No fetch() or console: the plugin needs neither. Clocks and random stay
  // (Date.now()).
  disableFeatures: ['http', 'fetch-event', 'stdio'],
});
await writeFile(out, component);
console.log(`${out}: ${component.length} bytes in ${((Date.now() - started) / 1000).toFixed(1)} s`);
