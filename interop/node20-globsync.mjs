// Lets the MCP conformance suite (pinned in package.json) load on Node.js 20.
// Its bundle imports `globSync` from 'fs', which Node.js has only from 22;
// the authorization-server scenarios never call it (it finds scenario files
// for the SDK tier checks). This module registers a load hook that replaces
// that one import, in the suite's own bundle only, with a function returning
// no files. On Node.js 22 and later it changes nothing.
//
//   node --import ./interop/node20-globsync.mjs interop/node_modules/@modelcontextprotocol/conformance/dist/index.js authorization …
//
// Driven by crates/gatehouse/tests/it/conformance.rs.

import { register } from 'node:module';
import fs from 'node:fs';

if (typeof fs.globSync !== 'function') {
  const hook = `
export async function load(url, context, next) {
  const loaded = await next(url, context);
  if (!url.includes('/@modelcontextprotocol/conformance/dist/') || !loaded.source) return loaded;
  const source = loaded.source.toString().replace(/import\\{([^}]*)\\}from"fs";/, (all, names) => {
    const parts = names.split(',');
    const glob = parts.find((p) => p === 'globSync' || p.startsWith('globSync as '));
    if (!glob) return all;
    const local = glob.includes(' as ') ? glob.split(' as ')[1] : 'globSync';
    const rest = parts.filter((p) => p !== glob).join(',');
    return 'import{' + rest + '}from"fs";const ' + local + '=()=>[];';
  });
  return { ...loaded, source };
}`;
  register(`data:text/javascript,${encodeURIComponent(hook)}`);
}
