// The permissions a command needs, named as libvirt's access control names them (`domain.start`,
// `storage_vol.delete`, …: one permission per API per object, which polkit or an ACL driver grants). A command needs
// all of its permissions; the policy (policy.ts) grants them by actor or role, host and domain.
import type { Command, Verb } from '../../machines/commands';

/** Every permission vmledger checks: what a policy may grant (patterns like `domain.*` match these). */
export const PERMISSIONS = [
  'connect.search_domains',
  'domain.read',
  'domain.write',
  'domain.save',
  'domain.delete',
  'domain.start',
  'domain.stop',
  'domain.suspend',
  'domain.init_control',
  'domain.hibernate',
  'domain.snapshot',
  'domain.block_write',
  'domain.migrate',
  'storage_vol.delete',
  'storage_vol.data_write',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** What each verb needs, whatever its flags (libvirt's checks for the API the virsh command calls). */
const BY_VERB: Record<Verb, readonly Permission[]> = {
  define: ['domain.write', 'domain.save'],
  create: ['domain.write', 'domain.start'],
  start: ['domain.start'],
  shutdown: ['domain.stop'],
  destroy: ['domain.stop'],
  suspend: ['domain.suspend'],
  resume: ['domain.suspend'],
  reboot: ['domain.init_control'],
  managedsave: ['domain.hibernate'],
  'managedsave-remove': ['domain.hibernate'],
  save: ['domain.hibernate'],
  undefine: ['domain.delete'],
  'snapshot-create': ['domain.snapshot'],
  'snapshot-delete': ['domain.snapshot'],
  'snapshot-revert': ['domain.snapshot'],
  blockcopy: ['domain.block_write'],
  blockjob: ['domain.block_write'],
  blockpull: ['domain.block_write'],
  migrate: ['domain.migrate'],
  'migrate-phase': ['domain.migrate'],
  'migrate-incoming': ['domain.migrate'],
  'guest-event': ['domain.write'],
};

/** The permissions one command needs: its verb's, and for undefine with storage removal the volume's too. */
export function permissionsOf(command: Command): Permission[] {
  const needed = [...BY_VERB[command.verb]];
  if (command.verb === 'undefine') {
    // virsh deletes the volumes through virStorageVolDelete/virStorageVolWipe: their own permissions.
    if (command.removeAllStorage || (command.storage?.length ?? 0) > 0) needed.push('storage_vol.delete');
    if (command.wipeStorage) needed.push('storage_vol.data_write');
  }
  return needed;
}
