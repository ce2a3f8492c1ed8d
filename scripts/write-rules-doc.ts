// `npm run docs:rules`: writes docs/rules.md from the rule catalog.
import { writeFileSync } from 'node:fs';
import { renderRulesDoc } from './rulesDoc';

const target = new URL('../docs/rules.md', import.meta.url);
writeFileSync(target, renderRulesDoc());
console.log(`wrote ${target.pathname}`);
