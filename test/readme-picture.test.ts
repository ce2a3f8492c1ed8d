// The README shows the overview from docs/overview.svg, a committed picture (a README is read where no command runs).
// It must be what `npm run diagram:readme` draws from today's machine: when the machine, the views or Graphviz change,
// this fails until the picture is drawn again.
import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { renderDiagramView } from '../services/diagramViewRender';

const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');

describe('the overview picture in the README', () => {
  it('is shown by the README, which says how to draw it', () => {
    const readme = read('README.md');
    expect(readme).toContain('](docs/overview.svg)');
    expect(readme).toContain('npm run diagram:readme');
    expect(JSON.parse(read('package.json')).scripts['diagram:readme']).toBe('node bin/vmledger.mjs diagram --format svg --output docs/overview.svg');
  });

  it('is what `npm run diagram:readme` draws from the machine today', async () => {
    const fresh = `${await renderDiagramView('svg')}\n`.replace(/\n+$/, '\n');
    const committed = read('docs/overview.svg');
    expect(committed === fresh, 'docs/overview.svg is stale: run `npm run diagram:readme` and commit it').toBe(true);
  });
});
