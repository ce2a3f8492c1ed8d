// vmledger's version. The build writes it in (tsdown `define`, from package.json at build time); vitest defines it
// the same way, and the source launcher bin/vmledger.mjs sets it before loading the CLI. Nothing reads
// package.json at run time, so a bundle works wherever it is copied.
declare const __VMLEDGER_VERSION__: string | undefined;

export const VMLEDGER_VERSION: string = typeof __VMLEDGER_VERSION__ === 'string' ? __VMLEDGER_VERSION__ : '0.0.0-dev';
