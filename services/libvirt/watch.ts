// `serve --connect URI` hears what libvirt does on its own and records it (services/reconcile.ts does the
// recording): each event names a domain, which is then compared with libvirt and brought up to date; after every
// (re)spawn of the event child, a resync of every ledger domain on the connection closes the gap it gives no signal
// of; and since libvirt has no event for a snapshot made of a shut-off domain, the snapshot lists are polled (cheap:
// one virsh command a domain).
//
// Work on one domain is serialised here and coalesced: events arriving while it is compared make one more pass.
// Events for domains the ledger does not know are followed only when they bring a new domain (Defined, Started):
// the others belong to domains nobody adopted (`vmledger adopt`).
//
// The default connection is also that of every host without a connection of its own (hostsWithOwnConnection): their
// domains live in the same libvirt, whose names are unique per connection, so a domain seen there belongs to the
// host that holds one of that name (LocalLedger.domainHosts: the host index, a define in flight, and the destination
// of a migration in flight, which the saga records); one none of them holds is the watch's own host's to bring in.
import { DEFAULT_HOST } from '../../machines/model';
import type { LocalLedger } from '../ledger-types';
import { recordObserved } from '../ledger';
import { LIBVIRT_ACTOR, onConnectionOf, reconcileDomain, type Found, type ObservationSource } from '../reconcile';
import type { LibvirtConnection } from './connection';
import { watchLibvirtEvents, type LibvirtEvent } from './events';
import type { StopHint } from './plan';

export interface LibvirtWatchOptions {
  host?: string;
  /**
   * On the default connection: the hosts that have a connection of their own. Every other ledger host's commands
   * run on this one, so its domains are watched here too. Absent: only `host` is watched.
   */
  hostsWithOwnConnection?: readonly string[];
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** How often the snapshot lists are compared (default 1000 ms: an out-of-band snapshot is in the ledger within ~1 s). */
  pollMs?: number;
  /** When to resync after each spawn of the event child (default 250 ms and 2 s: it subscribes within that, unannounced). */
  resyncAfterSpawnMs?: readonly number[];
  virsh?: string;
  /** Each difference recorded (for the logs and the tests). */
  onRecorded?: (found: Found, source: ObservationSource) => void;
}

export interface LibvirtWatch {
  readonly spawned: number;
  readonly events: number;
  /** Resolves once no domain is being compared (and none is waiting to be). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

interface Pass {
  source: ObservationSource;
  hint?: StopHint;
  detail?: string;
}

/** Why the domain stopped, from a lifecycle event (the domain may be gone by the time it is read). */
export function stopHintOf(event: LibvirtEvent): StopHint | undefined {
  if (event.kind !== 'lifecycle') return undefined;
  const [what, how] = event.detail.split(' ', 2);
  if (what === 'Crashed') return 'crashed';
  // `Shutdown Finished after guest request` comes about a second before `Stopped Shutdown` (the domain is still
  // active between them); `… after host request` before `Stopped Destroyed`.
  if (what === 'Shutdown') return /after guest request/.test(event.detail) ? 'shutdown' : /after host request/.test(event.detail) ? 'destroyed' : undefined;
  if (what !== 'Stopped') return undefined;
  switch (how) {
    case 'Shutdown':
      return 'shutdown';
    case 'Crashed':
    case 'Failed':
      return 'crashed';
    case 'Saved':
      return 'saved';
    default:
      return 'destroyed';
  }
}

export function watchLibvirt(ledger: LocalLedger, connection: LibvirtConnection, options: LibvirtWatchOptions = {}): LibvirtWatch {
  const host = options.host ?? DEFAULT_HOST;
  const ownConnection = options.hostsWithOwnConnection;
  /** Whether a ledger host's commands run on this connection (and so its domains live in this libvirt). */
  const here = onConnectionOf(host, ownConnection);
  /** One domain of one host: the unit of work (two hosts may each hold a domain of the name, the ledger out of step). */
  const keyOf = (h: string, name: string) => `${h}\u0000${name}`;
  const log = options.log ?? (() => {});
  const running = new Map<string, Promise<void>>();
  const waiting = new Map<string, Pass>();
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;

  const compare = async (domainHost: string, name: string, pass: Pass): Promise<void> => {
    // The watch's log names its own host; a domain of another host on this connection is named with its host.
    const shown = domainHost === host ? name : `${domainHost}/${name}`;
    try {
      const found = await reconcileDomain(ledger, connection, name, { host: domainHost, migrations: ledger, ...pass });
      for (const f of found) {
        const result = f.outcome?.ok ? 'recorded' : `refused by ${f.outcome?.rule ?? '?'}: ${f.outcome?.message ?? ''}`;
        log(f.outcome?.ok ? 'info' : 'warn', `libvirt (${pass.source}): ${shown}: ${f.what}: ledger ${f.ledger}, libvirt ${f.libvirt}: ${result}`);
        options.onRecorded?.(f, pass.source);
      }
    } catch (error) {
      if (!closed) log('warn', `libvirt (${pass.source}): ${shown}: ${error instanceof Error ? error.message : String(error)}`);
    }
  };

  /** The last stop hint each domain's events gave: a later pass that finds the domain gone uses it. */
  const hints = new Map<string, { hint: StopHint; at: number }>();
  const HINT_MS = 10_000;

  const schedule = (domainHost: string, name: string, given: Pass) => {
    if (closed) return;
    const key = keyOf(domainHost, name);
    if (given.hint) hints.set(key, { hint: given.hint, at: Date.now() });
    const recent = hints.get(key);
    const pass = given.hint || !recent || Date.now() - recent.at > HINT_MS ? given : { ...given, hint: recent.hint };
    if (running.has(key)) {
      // One more pass after this one; an event's hint wins over a resync's lack of one.
      const prior = waiting.get(key);
      waiting.set(key, pass.hint || !prior ? pass : prior);
      return;
    }
    const run = (async () => {
      let next: Pass | undefined = pass;
      while (next && !closed) {
        await compare(domainHost, name, next);
        next = waiting.get(key);
        waiting.delete(key);
      }
    })().finally(() => running.delete(key));
    running.set(key, run);
  };

  /** The ledger's domains that live on this connection, from the host index (host and name; none is loaded). */
  const domainsHere = async () => (await ledger.queryDomains({ all: true, ...(ownConnection ? {} : { host }) })).domains.filter((d) => here(d.host));

  /**
   * The hosts on this connection holding a domain of this name (libvirt's names are unique per connection: one),
   * defining one, or receiving one by migration: its events come before the define or the arrival is recorded, and
   * must not bring it to this host as well.
   */
  const holders = async (name: string) => (await ledger.domainHosts(name)).filter(here);

  const resync = async () => {
    try {
      for (const d of await domainsHere()) schedule(d.host, d.name, { source: 'resync' });
    } catch (error) {
      if (!closed) log('warn', `libvirt resync: ${error instanceof Error ? error.message : String(error)}`);
    }
  };

  /** A reboot leaves no trace in the state: recorded from the event itself, its id from libvirt's timestamp. */
  const reboot = async (domainHost: string, event: LibvirtEvent) => {
    const outcome = await recordObserved(ledger, {
      verb: 'guest-event',
      host: domainHost,
      domain: event.domain,
      event: 'reboot',
      meta: {
        commandId: `libvirt/reboot/${domainHost}/${event.domain}@${event.time}`.slice(0, 200),
        actor: LIBVIRT_ACTOR,
        time: new Date().toISOString(),
        observed: { source: 'event', detail: event.line.slice(0, 1000) },
      },
    });
    if (!outcome.ok) log('warn', `libvirt (event): ${event.domain}: reboot refused by ${outcome.rule}: ${outcome.message}`);
  };

  const onEvent = (event: LibvirtEvent) => {
    void (async () => {
      const owners = await holders(event.domain);
      const brings = event.kind === 'lifecycle' && /^(Defined|Started)\b/.test(event.detail);
      // One no host here holds (nor is defining) can only be brought in, to the watch's own host.
      if (owners.length === 0 && brings) owners.push(host);
      for (const owner of owners) {
        if (event.kind === 'reboot') await reboot(owner, event);
        schedule(owner, event.domain, { source: 'event', hint: stopHintOf(event), detail: event.line });
      }
    })().catch((error: unknown) => log('warn', `libvirt event '${event.line}': ${error instanceof Error ? error.message : String(error)}`));
  };

  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  const events = watchLibvirtEvents(connection.uri, {
    ...(options.virsh !== undefined ? { virsh: options.virsh } : {}),
    onEvent,
    onSpawn: (n) => {
      // Only a child still listening by then has (most likely) subscribed: one that could not connect exits at once.
      for (const ms of options.resyncAfterSpawnMs ?? [250, 2000]) {
        later(ms, () => {
          if (!events.alive(n)) return;
          if (n > 1 && ms === (options.resyncAfterSpawnMs ?? [250])[0]) log('info', `libvirt events: subscribed again (child ${n}); resynchronising`);
          void resync();
        });
      }
    },
    onExit: (why, delayMs) => {
      if (!closed) log('warn', `libvirt events: ${why}; respawning in ${delayMs} ms`);
    },
  });

  /** Snapshots made behind vmledger's back on a shut-off domain raise no event: their list is compared instead. */
  const pollSnapshots = async () => {
    try {
      for (const d of await domainsHere()) {
        if (closed || running.has(keyOf(d.host, d.name))) continue;
        const { state: s } = await ledger.loadDomain(d.host, d.name);
        if (s.life !== 'exists') continue;
        const r = await connection.run(['snapshot-list', s.name, '--name']);
        if (r.failed) continue;
        const theirs = r.stdout
          .split('\n')
          .map((l) => l.trim())
          .filter((l) => l !== '')
          .sort();
        const ours = Object.keys(s.snapshots).sort();
        if (theirs.join('\n') !== ours.join('\n')) schedule(d.host, d.name, { source: 'resync', detail: 'snapshot list differs' });
      }
    } catch (error) {
      if (!closed) log('warn', `libvirt snapshot poll: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  const pollMs = options.pollMs ?? 1000;
  let polling: Promise<void> | undefined;
  const poller = setInterval(() => {
    polling ??= pollSnapshots().finally(() => (polling = undefined));
  }, pollMs);
  poller.unref?.();

  return {
    get spawned() {
      return events.spawned;
    },
    get events() {
      return events.events;
    },
    async idle() {
      while (running.size > 0) await Promise.all([...running.values()]);
    },
    async close() {
      closed = true;
      clearInterval(poller);
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await events.close();
      await polling;
      await Promise.all([...running.values()]);
    },
  };
}
