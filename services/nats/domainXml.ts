// define/create over NATS may carry the domain XML itself (`xml`), as a libvirt client sends it to
// virDomainDefineXML/virDomainCreateXML: the rules read `config` from it, and a libvirt driver defines that XML
// verbatim. A request with both `xml` and `config` must name the same domain (name and UUID).
import { randomUUID } from 'node:crypto';

import { parseDomainXml } from '../xml';

/** The request body with `config` read from `xml` (unchanged without `xml`); throws with a message naming the field. */
export function withConfigFromXml(body: Record<string, unknown>): Record<string, unknown> {
  if (body.xml === undefined) return body;
  if (typeof body.xml !== 'string') throw new Error('xml: must be a string (the <domain> XML)');
  let parsed;
  try {
    parsed = parseDomainXml(body.xml, randomUUID);
  } catch (error) {
    throw new Error(`xml: ${error instanceof Error ? error.message : String(error)}`);
  }
  const given = body.config as { name?: unknown; uuid?: unknown } | undefined;
  if (given !== undefined) {
    if (given === null || typeof given !== 'object') throw new Error('config: must be an object');
    if (given.name !== undefined && given.name !== parsed.name) {
      throw new Error(`config.name '${String(given.name)}' and the xml's <name> '${parsed.name}' differ`);
    }
    if (given.uuid !== undefined && /<uuid\b/.test(body.xml) && given.uuid !== parsed.uuid) {
      throw new Error(`config.uuid '${String(given.uuid)}' and the xml's <uuid> '${parsed.uuid}' differ`);
    }
    return { ...body, config: { ...parsed, ...(given.uuid !== undefined ? { uuid: given.uuid } : {}) } };
  }
  return { ...body, config: parsed };
}
