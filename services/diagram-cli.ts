// `vmledger diagram`, `vmledger diagram-diff` and `vmledger ui`: the state diagram for reviewers.
//
//   vmledger diagram [--format mermaid|dot|svg|json] [--view overview|full] [--focus STATE|VERB|RULE-ID]
//                    [--output FILE] [--direction LR|TB] [--no-legend]
//   vmledger diagram-diff OLD.json [NEW.json] [--json | --format svg|dot|mermaid [-o FILE]] [--exit-code]
//   vmledger ui [--store SPEC] [--port N] [--host ADDRESS]
//
// `diagram` prints the diagram generated from the machine (Mermaid by default). `--format json` is the model every
// renderer draws from; keep one per release and `diagram-diff OLD.json` tells a reviewer which edges the machine has
// added, removed or re-guarded since (NEW.json defaults to the machine of this checkout). `ui` serves a read-only
// page (services/ui/server.ts) on 127.0.0.1.
//
// registerDiagramCommands(program) adds the three commands to a commander program; importing this module also
// registers them with the CLI's subcommand registry (services/cli/program.ts), which is how services/cli/main.ts
// picks them up.
import { readFileSync, writeFileSync } from 'node:fs';

import { Option, type Command } from 'commander';

import { openStoreForReading } from './audit-cli';
import { cliGlobals, fail, storeOption } from './cli/program';
import { diagramModel, diffDiagrams, type DiagramDiff, type DiagramEdge, type DiagramFormat, type DiagramJson } from './diagram';
import { renderDiagramView, renderViewDot, renderViewMermaid, renderViewSvg, type DiagramView } from './diagramViewRender';
import { diffView, parseFocus, type FocusSpec } from './diagramViews';
import type { EventStore } from './eventstore/types';
import { parseDiagramJson, reguardNote } from './ui/diffView';
import { DEFAULT_UI_HOST, DEFAULT_UI_PORT, startUiServer, type UiServer } from './ui/server';
import { isLoopback, newUiToken } from './ui/token';

interface Out {
  write(text: string): unknown;
}

export interface DiagramCliDeps {
  stdout?: Out;
  stderr?: Out;
  /** Default: sets process.exitCode. */
  exit?: (code: number) => void;
  /** `ui`: opens the store (default: the CLI's reader, which refuses a SQLite file that does not exist). */
  openStore?: (spec: string) => Promise<EventStore>;
  /** `ui`: called once the server listens; default waits for SIGINT/SIGTERM, then the server and store are closed. */
  onListening?: (server: UiServer) => Promise<void>;
}

export const DIAGRAM_FORMATS = ['mermaid', 'dot', 'svg', 'json'] as const satisfies readonly DiagramFormat[];
export const DIAGRAM_VIEWS = ['overview', 'full', 'focus'] as const satisfies readonly DiagramView[];
const DIFF_PICTURES = ['svg', 'dot', 'mermaid'] as const;
type DiffPicture = (typeof DIFF_PICTURES)[number];

// ---------------------------------------------------------------------------------------------------
// Text form of a diff

function edgeText(e: { from: string; to: string; event: string }): string {
  return `${e.from} --${e.event}--> ${e.to}`;
}

function rulesText(rules: readonly string[]): string {
  return `[${rules.join(', ')}]`;
}

/** The diff as a reviewer reads it: edges added (+), removed (-) and re-guarded (~), then state and catalog changes. */
export function formatDiagramDiff(diff: DiagramDiff, labels: { old: string; new: string } = { old: 'old', new: 'new' }): string {
  const lines: string[] = [`diagram-diff: ${labels.old} → ${labels.new}`];
  const changed = diff.added.length + diff.removed.length + diff.reguarded.length;
  const other =
    diff.statesAdded.length + diff.statesRemoved.length + diff.rulesAdded.length + diff.rulesRemoved.length + diff.rulesChanged.length;
  if (changed === 0 && other === 0) {
    lines.push(`no differences (${diff.unchanged} edges unchanged)`);
    return lines.join('\n') + '\n';
  }
  lines.push(
    `${diff.added.length} added, ${diff.removed.length} removed, ${diff.reguarded.length} re-guarded, ${diff.unchanged} unchanged edges`,
  );
  const section = (title: string, items: string[]) => {
    if (items.length === 0) return;
    lines.push('', `${title}:`, ...items);
  };
  const outcome = (e: DiagramEdge) => (e.outcome ? `  (outcome ${e.outcome})` : '');
  section('Edges added', diff.added.map((e) => `  + ${edgeText(e)}  ${rulesText(e.rules)}${outcome(e)}`));
  section('Edges removed', diff.removed.map((e) => `  - ${edgeText(e)}  ${rulesText(e.rules)}${outcome(e)}`));
  section(
    'Edges re-guarded',
    diff.reguarded.flatMap((r) => [
      `  ~ ${edgeText(r)}  ${reguardNote(r)}`,
      `      before: ${rulesText(r.before)}`,
      `      after:  ${rulesText(r.after)}`,
    ]),
  );
  section('States added', diff.statesAdded.map((s) => `  + ${s}`));
  section('States removed', diff.statesRemoved.map((s) => `  - ${s}`));
  section(
    'Rule catalog',
    [
      ...diff.rulesAdded.map((id) => `  + ${id}`),
      ...diff.rulesRemoved.map((id) => `  - ${id}`),
      ...diff.rulesChanged.map((id) => `  ~ ${id} (new text)`),
    ],
  );
  return lines.join('\n') + '\n';
}

/** The diff drawn on the newer machine's overview, with its legend of changes. */
function renderDiffPicture(format: DiffPicture, older: DiagramJson, newer: DiagramJson): string | Promise<string> {
  const graph = diffView(older, newer);
  const options = { model: newer };
  return format === 'svg' ? renderViewSvg(graph, options) : format === 'dot' ? renderViewDot(graph, options) : renderViewMermaid(graph, options);
}

function readExport(path: string, what: string) {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    fail(`cannot read ${what} '${path}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    return parseDiagramJson(text, `'${path}'`);
  } catch (error) {
    fail((error as Error).message);
  }
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isInteger(port) || port < 0 || port > 65535) fail(`--port must be 0–65535, got '${text}'`);
  return port;
}

/** Resolves on SIGINT or SIGTERM (the first one), then stops listening for them. */
function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}


// ---------------------------------------------------------------------------------------------------

export function registerDiagramCommands(program: Command, deps: DiagramCliDeps = {}): Command {
  const stdout = deps.stdout ?? process.stdout;
  const stderr = deps.stderr ?? process.stderr;
  const exit = deps.exit ?? ((code: number) => void (process.exitCode = code));

  /** Writes a diagram to `--output FILE`, or to stdout. */
  const writeOut = (diagram: string, output: string | undefined): void => {
    const text = diagram.endsWith('\n') ? diagram : diagram + '\n';
    if (output === undefined) {
      stdout.write(text);
      return;
    }
    try {
      writeFileSync(output, text);
    } catch (error) {
      fail(`cannot write '${output}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  };

  program
    .command('diagram')
    .description(
      'print the domain state diagram generated from the machine: by default an overview (one edge per pair of states ' +
        'with its verbs, the guards most edges share in the legend); --view full labels every edge `verb [RULE-ID, …]`; ' +
        '--focus draws a state\'s exits or a verb\'s or rule\'s edges (json: the model, for diagram-diff and the ui)',
    )
    .addOption(new Option('--format <format>', 'mermaid, dot (Graphviz), svg (rendered offline) or json').choices(DIAGRAM_FORMATS).default('mermaid'))
    .option('-o, --output <file>', 'write the diagram to FILE instead of stdout')
    .addOption(new Option('--direction <dir>', 'layout direction').choices(['LR', 'TB']).default('LR'))
    .option('--no-legend', 'leave the rule legend out')
    .addOption(
      new Option('--view <view>', 'overview: one edge per pair of states; full: every edge with its guards; focus: see --focus')
        .choices(DIAGRAM_VIEWS)
        .default('overview'),
    )
    .option('--focus <what>', 'only the exits of a state, or the edges of a verb or a rule id, each verb with its guards in order')
    .action(async (opts: { format: DiagramFormat; output?: string; direction: 'LR' | 'TB'; legend: boolean; view: DiagramView; focus?: string }) => {
      const model = diagramModel();
      let focus: FocusSpec | undefined;
      if (opts.focus !== undefined) {
        if (opts.view === 'full') fail('--focus draws a focus view; leave out --view full');
        try {
          focus = parseFocus(model, opts.focus);
        } catch (error) {
          fail((error as Error).message);
        }
      } else if (opts.view === 'focus') fail('--view focus needs --focus STATE|VERB|RULE-ID');
      const view = focus ? 'focus' : opts.view;
      writeOut(await renderDiagramView(opts.format, { diagram: model, view, ...(focus ? { focus } : {}), direction: opts.direction, legend: opts.legend }), opts.output);
      exit(0);
    });

  program
    .command('diagram-diff')
    .description(
      'compare two versions of the diagram (`vmledger diagram --format json` exports): edges added, removed and re-guarded ' +
        '(same states and event, other rules or rule order). NEW defaults to the machine of this checkout',
    )
    .argument('<old.json>', 'the older export')
    .argument('[new.json]', 'the newer export (default: the current machine)')
    .option('--json', 'print the diff as JSON')
    .addOption(
      new Option('--format <format>', 'draw the diff instead: the newer machine with the changed edges in colour (svg, dot, mermaid)').choices(
        DIFF_PICTURES,
      ),
    )
    .option('-o, --output <file>', 'with --format: write the picture to FILE')
    .option('--exit-code', 'exit with status 1 when there are differences (as `git diff --exit-code`)')
    .action(async (oldPath: string, newPath: string | undefined, opts: { json?: boolean; exitCode?: boolean; format?: DiffPicture; output?: string }) => {
      const older = readExport(oldPath, 'the older export');
      const newer = newPath === undefined ? diagramModel() : readExport(newPath, 'the newer export');
      const diff = diffDiagrams(older, newer);
      if (opts.format !== undefined) writeOut(await renderDiffPicture(opts.format, older, newer), opts.output);
      else
        stdout.write(
          opts.json ? JSON.stringify(diff, null, 2) + '\n' : formatDiagramDiff(diff, { old: oldPath, new: newPath ?? 'the current machine' }),
        );
      const differs =
        diff.added.length + diff.removed.length + diff.reguarded.length + diff.statesAdded.length + diff.statesRemoved.length +
          diff.rulesAdded.length + diff.rulesRemoved.length + diff.rulesChanged.length > 0;
      exit(opts.exitCode && differs ? 1 : 0);
    });

  program
    .command('ui')
    .description(
      'serve a read-only page for reviewers: the state diagram, the rules, each domain\'s recorded history step by step, ' +
        'and the diff against another version (binds 127.0.0.1)',
    )
    .addOption(storeOption())
    .option('--port <n>', `port to listen on (0: any free port)`, String(DEFAULT_UI_PORT))
    .option('--host <address>', `address to bind (default: ${DEFAULT_UI_HOST}; anything else exposes the ledger's history to the network)`)
    .option('--token <token>', 'token every request must carry (default: $VMLEDGER_UI_TOKEN; off loopback a random one when none is given)')
    .action(async (opts: { port: string; host?: string; token?: string }, cmd: Command) => {
      const { store: spec } = cliGlobals(cmd);
      const port = parsePort(opts.port);
      // The global --host names a hypervisor host; only the ui's own --host is an address to bind.
      const bind = (cmd.opts() as { host?: string }).host ?? DEFAULT_UI_HOST;
      let store: EventStore;
      try {
        store = await (deps.openStore ?? openStoreForReading)(spec);
      } catch (error) {
        fail(error instanceof Error ? error.message : String(error));
      }
      const token = opts.token ?? (process.env.VMLEDGER_UI_TOKEN?.trim() || (isLoopback(bind) ? undefined : newUiToken()));
      let server: UiServer;
      try {
        server = await startUiServer({ store, port, host: bind, token, log: (line) => stderr.write(`${line}\n`) });
      } catch (error) {
        await store.close().catch(() => undefined);
        fail(error instanceof Error ? error.message : String(error));
      }
      if (!isLoopback(bind)) stderr.write(`warning: listening on ${bind}: whoever has the token can read this ledger's history\n`);
      const link = token === undefined ? server.url : `${server.url}?token=${encodeURIComponent(token)}`;
      stdout.write(`vmledger ui: ${link} (store ${spec}); Ctrl-C to stop\n`);
      try {
        await (deps.onListening ?? (() => untilSignal()))(server);
      } finally {
        await server.close();
        await store.close();
      }
      exit(0);
    });

  return program;
}

