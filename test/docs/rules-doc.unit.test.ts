// docs/rules.md is generated from machines/rules.ts and machines/refusals.ts; this keeps the committed file
// equal to what the generator renders today, and the two tables it is made from in step with each other.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GUARDS } from '../../machines/guards';
import { REFUSALS } from '../../machines/refusals';
import { RULES } from '../../machines/rules';
import { renderRulesDoc } from '../../scripts/rulesDoc';

const DOC = new URL('../../docs/rules.md', import.meta.url);

describe('docs/rules.md', () => {
  it('is what `npm run docs:rules` renders from the catalog (run it after changing a rule)', () => {
    expect(readFileSync(DOC, 'utf8')).toBe(renderRulesDoc());
  });

  it('lists libvirt code and message for every guard rule, and none for a rule that does not refuse', () => {
    for (const rule of RULES) {
      const templates = Object.hasOwn(REFUSALS, rule.id) ? REFUSALS[rule.id]! : [];
      if (rule.kind === 'guard') expect(templates.length, `${rule.id} has no refusal in machines/refusals.ts`).toBeGreaterThan(0);
      else expect(templates, `${rule.id} is an effect rule but lists refusals`).toEqual([]);
    }
    expect(Object.keys(REFUSALS).filter((id) => !Object.hasOwn(GUARDS, id))).toEqual([]);
  });

  it('has a row for every rule id, each once, and quotes each message', () => {
    const text = readFileSync(DOC, 'utf8');
    const ids = [...text.matchAll(/^\|\s*([A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+)\s*\|/gm)].map((m) => m[1]!);
    expect(ids).toEqual(RULES.map((r) => r.id));
    for (const t of Object.values(REFUSALS).flat()) expect(text).toContain(t.message.replace(/\|/g, '\\|'));
  });
});
