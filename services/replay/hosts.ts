// The host as decide sees it during a replay.
import type { HostView } from '../../machines/guards';
import type { DomainState } from '../../machines/model';

// The host as decide sees it: which existing domain holds a UUID (DEF-NAME), kept current as states change.

export class HostIndex implements HostView {
  private readonly byHost = new Map<string, Map<string, string>>();

  domainNameByUuid(host: string, uuid: string): string | undefined {
    return this.byHost.get(host)?.get(uuid);
  }

  /** Records that one domain went from `before` to `after`. */
  update(before: DomainState | undefined, after: DomainState): void {
    const was = before && before.life === 'exists' ? before.uuid : null;
    const is = after.life === 'exists' ? after.uuid : null;
    if (before && was === is && before.name === after.name && before.host === after.host) return;
    if (before && was !== null) {
      const uuids = this.byHost.get(before.host);
      if (uuids?.get(was) === before.name) uuids.delete(was);
    }
    if (is !== null) {
      let uuids = this.byHost.get(after.host);
      if (!uuids) this.byHost.set(after.host, (uuids = new Map()));
      uuids.set(is, after.name);
    }
  }
}
