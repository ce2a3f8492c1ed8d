// `vmledger ui`: a small read-only web page for reviewers, served with node:http alone (no framework, no bundler,
// no CDN: the page works offline). It shows the machine's state diagram, the rule catalog, a domain's recorded
// history step by step with the current state highlighted in the diagram, and a diff against another version's
// JSON export.
//
//   GET  /                          the page (assets/index.html, app.css, app.js)
//   GET  /api/diagram.svg[?view=overview|full|focus&focus=STATE|VERB|RULE]
//                                   the diagram (default: the overview), states and edges carrying ids, classes, data-*
//   GET  /api/view.json[?view=…]    the view drawn (its edges, boxes and legend: services/diagramViews.ts)
//   GET  /api/diagram.json          the diagram model, i.e. `vmledger diagram --format json` (save it to diff later)
//   GET  /api/rules                 the rule catalog: id, section, kind, text, whether an edge carries it
//   GET  /api/domains?q=&host=&state=&limit=   the domain streams (gone ones too) whose name contains q, on that
//                                   host, in that state: the first `limit` (default 50), the total, the hosts
//   GET  /api/history?host=&domain= one step per recorded command (accepted or refused) with the state after it
//   GET  /api/diff?against=PATH[&new=PATH]   diff of a JSON export on this machine against the current machine
//   POST /api/diff                  the same with the export in the body (or {"old": …, "new": …})
//
// It binds 127.0.0.1 unless told otherwise, and then answers only requests addressed to a loopback name (a page on
// another site cannot reach it through DNS rebinding). Bound to any other address it requires a token (token.ts).
// Nothing it serves writes to the ledger.
import { readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';

import { DEFAULT_HOST } from '../../machines/model';
import { domainList } from '../../projections/domainList';
import { openViews, type LedgerViews } from '../../projections/queries';
import { diagramModel, renderDiagram, type DiagramJson } from '../diagram';
import { renderViewSvg, viewGraph, type DiagramView } from '../diagramViewRender';
import { parseFocus, type FocusSpec } from '../diagramViews';
import type { EventStore } from '../eventstore/types';
import type { Ledger } from '../ledger-types';
import { buildDiffView, parseDiagramJson } from './diffView';
import { searchDomains, searchOfParams } from './domainSearch';
import { buildHistory } from './history';
import { annotateDiagramSvg } from './svg';
import { isLoopback, presentedToken, tokenCookie, tokenMatches } from './token';
import { annotateViewSvg } from './viewSvg';

export const DEFAULT_UI_HOST = '127.0.0.1';
export const DEFAULT_UI_PORT = 7070;
/** Largest request body accepted (an uploaded diagram export is ~100 kB). */
export const MAX_BODY_BYTES = 8 * 1024 * 1024;

export interface UiServerOptions {
  /** The event store to read; or give `ledger` and its store is read. */
  store?: EventStore;
  ledger?: Pick<Ledger, 'store'>;
  /** Default 7070; 0 picks a free port. */
  port?: number;
  /** Address to bind. Default 127.0.0.1. */
  host?: string;
  /** Relative `?against=` paths are resolved against this directory. Default: the working directory. */
  baseDir?: string;
  /** Where request errors are logged (default: nowhere). */
  log?: (line: string) => void;
  /** Required of every request (token.ts); must be given when `host` is not loopback. */
  token?: string;
}

export interface UiServer {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly server: Server;
  /** Stops listening and closes the read views; the store stays the caller's. */
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const ASSET_DIR = new URL('./assets/', import.meta.url);

interface Asset {
  type: string;
  body: Buffer;
}

function loadAssets(): Map<string, Asset> {
  const read = (name: string) => readFileSync(new URL(name, ASSET_DIR));
  const html = { type: 'text/html; charset=utf-8', body: read('index.html') };
  return new Map([
    ['/', html],
    ['/index.html', html],
    ['/app.css', { type: 'text/css; charset=utf-8', body: read('app.css') }],
    ['/app.js', { type: 'text/javascript; charset=utf-8', body: read('app.js') }],
  ]);
}

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/** The host name of a Host header (`[::1]:7070` → `::1`). */
function hostName(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']'));
  const colon = h.lastIndexOf(':');
  return colon === -1 ? h : h.slice(0, colon);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `the request body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function startUiServer(options: UiServerOptions): Promise<UiServer> {
  const store = options.store ?? options.ledger?.store;
  if (!store) throw new Error('startUiServer needs a store or a ledger');
  const bindHost = options.host ?? DEFAULT_UI_HOST;
  const token = options.token;
  if (!isLoopback(bindHost) && !token) {
    throw new Error(`binding ${bindHost} (not loopback) exposes the ledger's history to the network: give a token (--token, or $VMLEDGER_UI_TOKEN)`);
  }
  const baseDir = options.baseDir ?? process.cwd();
  const log = options.log ?? (() => undefined);
  const assets = loadAssets();
  const model: DiagramJson = diagramModel();

  // Rendered once per view asked for (a focus per state, verb or rule: a few dozen at most).
  const svgs = new Map<string, Promise<string>>();
  const diagram = (url: URL): Promise<string> => {
    const { view, focus, key } = badRequest(() => viewOf(url, model));
    if (!svgs.has(key)) {
      const rendered =
        view === 'full'
          ? renderDiagram('svg', { model, legend: false }).then((svg) => annotateDiagramSvg(svg, model, { idPrefix: 'm-' }).svg)
          : (async () => {
              const graph = viewGraph(model, view, focus);
              return annotateViewSvg(await renderViewSvg(graph, { model, legend: false }), graph, { idPrefix: 'm-' }).svg;
            })();
      svgs.set(
        key,
        rendered.catch((error: unknown) => {
          svgs.delete(key);
          throw error;
        }),
      );
    }
    return svgs.get(key)!;
  };

  let views: Promise<LedgerViews> | undefined;
  /** The read views, caught up with the log. */
  const freshViews = async (): Promise<LedgerViews> => {
    views ??= openViews(store, { onWarning: (m) => log(`vmledger ui: ${m}`) }).catch((error: unknown) => {
      views = undefined;
      throw error;
    });
    const v = await views;
    await v.refresh();
    return v;
  };

  const readExport = async (path: string, what: string): Promise<DiagramJson> => {
    const full = resolve(baseDir, path);
    let size: number;
    try {
      size = (await stat(full)).size;
    } catch {
      throw new HttpError(404, `no file '${path}'`);
    }
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `'${path}' is larger than ${MAX_BODY_BYTES} bytes`);
    const text = await readFile(full, 'utf8');
    return badRequest(() => parseDiagramJson(text, what));
  };

  const routes: Record<string, (url: URL, req: IncomingMessage) => Promise<{ type: string; body: string }>> = {
    '/api/diagram.svg': async (url) => ({ type: 'image/svg+xml; charset=utf-8', body: await diagram(url) }),
    '/api/diagram.json': async () => json(model),
    '/api/view.json': async (url) => {
      const { view, focus } = badRequest(() => viewOf(url, model));
      return json(view === 'full' ? { kind: 'vmledger-diagram-view', view: 'full', edges: model.edges.length } : viewGraph(model, view, focus));
    },
    '/api/rules': async () => json({ rules: model.rules, nonEdgeRules: model.nonEdgeRules, uncataloguedRules: model.uncataloguedRules }),
    '/api/domains': async (url) => {
      const search = badRequest(() => searchOfParams(url.searchParams));
      const v = await freshViews();
      return json(searchDomains(v.runner.stateOf(domainList).streams, v.position, search));
    },
    '/api/history': async (url) => {
      const domain = url.searchParams.get('domain');
      if (!domain) throw new HttpError(400, 'give ?domain=NAME (and &host=HOST unless it is on local)');
      const host = url.searchParams.get('host') || DEFAULT_HOST;
      const v = await freshViews();
      const entries = await v.auditEntries({ host, domain });
      if (entries.length === 0) throw new HttpError(404, `nothing recorded for domain '${domain}' on host '${host}'`);
      return json(await buildHistory(store, host, domain, entries));
    },
    '/api/diff': async (url, req) => {
      let older: DiagramJson;
      let newer: DiagramJson | undefined;
      if (req.method === 'POST') {
        const text = await readBody(req);
        const body = badRequest(() => {
          try {
            return JSON.parse(text) as unknown;
          } catch {
            throw new Error('the uploaded text is not JSON (expected the output of `vmledger diagram --format json`)');
          }
        });
        if (body && typeof body === 'object' && 'old' in body) {
          const pair = body as { old: unknown; new?: unknown };
          older = badRequest(() => parseDiagramJson(pair.old, 'the older version'));
          if (pair.new !== undefined && pair.new !== null) newer = badRequest(() => parseDiagramJson(pair.new, 'the newer version'));
        } else {
          older = badRequest(() => parseDiagramJson(body, 'the uploaded version'));
        }
      } else {
        const against = url.searchParams.get('against');
        if (!against) throw new HttpError(400, 'give ?against=PATH of a `vmledger diagram --format json` export, or POST the export');
        older = await readExport(against, `'${against}'`);
        const newPath = url.searchParams.get('new');
        if (newPath) newer = await readExport(newPath, `'${newPath}'`);
      }
      return json(await buildDiffView(older, newer ?? model));
    },
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    // Loopback only answers loopback names: a foreign page cannot reach it by rebinding its own name to 127.0.0.1.
    if (isLoopback(bindHost) && !isLoopback(hostName(req.headers.host ?? ''))) {
      throw new HttpError(421, 'this server answers only requests to 127.0.0.1, localhost or [::1]');
    }
    const url = new URL(req.url ?? '/', 'http://ui.invalid');
    if (token !== undefined) {
      const presented = presentedToken(req, url);
      if (!tokenMatches(token, presented.token)) {
        throw new HttpError(401, 'this server needs its token: open the link it printed (…/?token=TOKEN) or send Authorization: Bearer TOKEN');
      }
      if (presented.fromQuery) res.setHeader('Set-Cookie', tokenCookie(token));
    }
    const asset = assets.get(url.pathname);
    const route = routes[url.pathname];
    const method = req.method ?? 'GET';
    const allowed = url.pathname === '/api/diff' ? ['GET', 'HEAD', 'POST'] : ['GET', 'HEAD'];
    if (!asset && !route) throw new HttpError(404, `no such page: ${url.pathname}`);
    if (!allowed.includes(method)) {
      res.setHeader('Allow', allowed.join(', '));
      throw new HttpError(405, `${method} is not allowed here`);
    }
    const { type, body } = asset ? { type: asset.type, body: asset.body } : await route!(url, req);
    res.statusCode = 200;
    res.setHeader('Content-Type', type);
    res.setHeader('Cache-Control', 'no-store');
    res.end(method === 'HEAD' ? undefined : body);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      const status = error instanceof HttpError ? error.status : 500;
      const message = error instanceof Error ? error.message : String(error);
      if (status >= 500) log(`vmledger ui: ${req.method} ${req.url}: ${error instanceof Error ? (error.stack ?? message) : message}`);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.statusCode = status;
      res.setHeader('Content-Type', 'application/json; charset=utf-8');
      res.setHeader('Cache-Control', 'no-store');
      res.end(JSON.stringify({ error: message }));
    });
  });

  await new Promise<void>((resolveListen, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      reject(
        error.code === 'EADDRINUSE'
          ? new Error(`port ${options.port ?? DEFAULT_UI_PORT} on ${bindHost} is in use (give another with --port, or --port 0 for any free one)`)
          : error,
      );
    };
    const onListening = () => {
      server.off('error', onError);
      resolveListen();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(options.port ?? DEFAULT_UI_PORT, bindHost);
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  return {
    url: `http://${urlHost}:${address.port}/`,
    host: address.address,
    port: address.port,
    server,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
      const v = await views?.catch(() => undefined);
      await v?.close();
    },
  };
}

/** `?view=` and `?focus=` of a diagram request; a focus alone means the focus view. */
function viewOf(url: URL, model: DiagramJson): { view: DiagramView; focus?: FocusSpec; key: string } {
  const asked = url.searchParams.get('view') ?? (url.searchParams.get('focus') ? 'focus' : 'overview');
  if (asked !== 'overview' && asked !== 'full' && asked !== 'focus') throw new Error(`unknown view '${asked}' (overview, full or focus)`);
  if (asked !== 'focus') return { view: asked, key: asked };
  const what = url.searchParams.get('focus');
  if (!what) throw new Error('the focus view needs ?focus=STATE, VERB or RULE-ID');
  const focus = parseFocus(model, what);
  return { view: 'focus', focus, key: `focus:${JSON.stringify(focus)}` };
}

function json(value: unknown): { type: string; body: string } {
  return { type: 'application/json; charset=utf-8', body: JSON.stringify(value) };
}

/** Runs a parse; its error becomes a 400 with the same message. */
function badRequest<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (error instanceof HttpError) throw error;
    throw new HttpError(400, error instanceof Error ? error.message : String(error));
  }
}
