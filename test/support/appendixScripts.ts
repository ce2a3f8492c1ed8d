// The Appendix A scripts that libvirt's test driver runs as qemu does (catalog §3 lists the exclusions), and
// where its texts differ: shared by the conformance tests against `virsh -c test:///default` and against the
// same driver through a private libvirtd (`vmledger --connect`).
export interface Script {
  id: string;
  commands: string[];
  /** Commands (by index) whose error text differs between the test driver and qemu (and so vmledger): why. */
  messageDiffers?: Record<number, string>;
  /** Commands (by index) whose printed output differs: why. */
  outputDiffers?: Record<number, string>;
}

const TREE = ['snapshot-create-as test s1', 'snapshot-create-as test s2', 'snapshot-create-as test s3', 'snapshot-revert test s2', 'snapshot-create-as test s4'];
const TEST_DRIVER_ERRORS = 'the test driver reports INTERNAL_ERROR texts here; qemu (and vmledger) say `domain is not running` / `already running` (§3)';

export const SCRIPTS: Script[] = [
  { id: 'T01', commands: ['undefine test', 'dominfo test', 'destroy test', 'list --all'] },
  { id: 'T03', commands: ['snapshot-create-as test s1', 'destroy test', 'undefine test'] },
  { id: 'T04', commands: ['snapshot-create-as test s1', 'destroy test', 'undefine test --snapshots-metadata', 'list --all'] },
  { id: 'T05', commands: ['undefine test --remove-all-storage', 'dominfo test'] },
  { id: 'T06', commands: ['destroy test', 'undefine test --wipe-storage'] },
  { id: 'T07', commands: ['destroy test', 'undefine test --storage vda --remove-all-storage'] },
  { id: 'T08', commands: ['destroy test', 'undefine test --nvram --keep-nvram'] },
  { id: 'T10', commands: ['destroy test', 'undefine test --delete-storage-volume-snapshots'] },
  { id: 'T11', commands: ['snapshot-create-as test s1', 'snapshot-revert test s1 --running --paused'] },
  { id: 'T12', commands: ['snapshot-create-as test s1', 'snapshot-delete test s1 --children --children-only'] },
  { id: 'T13', commands: ['undefine test', 'snapshot-create-as test s1 --halt'] },
  { id: 'T14', commands: ['snapshot-create-as test s1 --halt', 'domstate test --reason', 'snapshot-list test'] },
  { id: 'T15', commands: ['snapshot-create test --current'] },
  { id: 'T16', commands: ['snapshot-create test --redefine --no-metadata'] },
  {
    id: 'T17',
    commands: ['snapshot-create test --redefine --halt'],
    messageDiffers: { 0: 'virsh retries without --halt and reports the XML error (§2.11 "virsh quirk on SC-3"); vmledger reports SC-REDEFINE-NOMETA' },
  },
  { id: 'T21', commands: ['snapshot-create test libvirt-examples/s1.xml --redefine', 'snapshot-current test --name', 'snapshot-list test'] },
  { id: 'T22', commands: ['snapshot-create test libvirt-examples/s1.xml --redefine --current', 'snapshot-current test --name'] },
  { id: 'T23', commands: ['snapshot-create-as test s1', 'snapshot-create-as test s1'] },
  { id: 'T24', commands: ['snapshot-create test libvirt-examples/s1_self_parent.xml --redefine'] },
  { id: 'T25', commands: ['snapshot-create test libvirt-examples/x1_missing_parent.xml --redefine'] },
  { id: 'T26', commands: [...TREE, 'snapshot-list test --tree', 'snapshot-current test --name', 'snapshot-parent test s4'] },
  { id: 'T27', commands: [...TREE, 'snapshot-delete test s2', 'snapshot-list test --tree', 'snapshot-parent test s3', 'snapshot-current test --name'] },
  { id: 'T28', commands: [...TREE, 'snapshot-delete test s4', 'snapshot-current test --name'] },
  { id: 'T29', commands: [...TREE, 'snapshot-delete test s2 --children-only', 'snapshot-list test --tree', 'snapshot-current test --name'] },
  { id: 'T30', commands: [...TREE, 'snapshot-delete test s2 --children', 'snapshot-list test --tree', 'snapshot-current test --name'] },
  { id: 'T31', commands: ['snapshot-create-as test s1', 'snapshot-delete test s1', 'snapshot-current test --name', 'snapshot-parent test s1'] },
  { id: 'T32', commands: ['snapshot-create-as test s1', 'snapshot-parent test s1'] },
  { id: 'T33', commands: ['snapshot-create-as test s1', 'destroy test', 'snapshot-revert test s1', 'domstate test --reason', 'snapshot-current test --name'] },
  { id: 'T34', commands: ['snapshot-create-as test s1', 'snapshot-revert test s1 --paused', 'domstate test --reason'] },
  { id: 'T35', commands: ['undefine test', 'snapshot-create test libvirt-examples/off1.xml --redefine', 'snapshot-revert test off1'] },
  { id: 'T36', commands: ['snapshot-create test libvirt-examples/off1.xml --redefine', 'snapshot-revert test off1', 'domstate test --reason'] },
  { id: 'T38', commands: ['undefine test', 'managedsave test'] },
  { id: 'T39', commands: ['managedsave test', 'domstate test --reason', 'undefine test'] },
  { id: 'T40', commands: ['managedsave test', 'undefine test --managed-save', 'list --all'] },
  {
    id: 'T41',
    commands: ['managedsave test', 'dominfo test', 'start test', 'domstate test --reason', 'dominfo test'],
    outputDiffers: { 3: 'the test driver boots fresh (`running (booted)`); qemu restores the image (`running (restored)`), §3' },
  },
  { id: 'T42', commands: ['managedsave test', 'managedsave-remove test', 'dominfo test'] },
  { id: 'T43', commands: ['destroy test', 'managedsave test'] },
  { id: 'T44', commands: ['start test'] },
  { id: 'T45', commands: ['destroy test', 'destroy test'] },
  { id: 'T46', commands: ['destroy test', 'suspend test'], messageDiffers: { 1: TEST_DRIVER_ERRORS } },
  { id: 'T47', commands: ['resume test'], messageDiffers: { 0: TEST_DRIVER_ERRORS } },
  { id: 'T48', commands: ['destroy test', 'shutdown test'], messageDiffers: { 1: TEST_DRIVER_ERRORS } },
  { id: 'T49', commands: ['destroy test', 'reboot test'] },
  { id: 'T50', commands: ['create libvirt-examples/test.xml'] },
  { id: 'T51', commands: ['destroy test', 'create libvirt-examples/test.xml', 'dominfo test'] },
  { id: 'T52', commands: ['create libvirt-examples/t2.xml', 'dominfo t2', 'destroy t2', 'dominfo t2'] },
  { id: 'T53', commands: ['define libvirt-examples/other_same_uuid.xml'] },
  { id: 'T54', commands: ['define libvirt-examples/test_nouuid.xml'] },
  { id: 'T55', commands: ['create libvirt-examples/t2.xml', 'define libvirt-examples/t2.xml', 'destroy t2', 'list --all'] },
  { id: 'T56', commands: ['undefine test', 'snapshot-create-as test s1', 'destroy test', 'create libvirt-examples/test.xml', 'snapshot-list test'] },
  { id: 'T57', commands: ['snapshot-create-as test s1', 'undefine test', 'snapshot-list test', 'dominfo test'] },
  { id: 'T69', commands: ['destroy test', 'save test libvirt-examples/x.save'] },
  { id: 'T70', commands: ['snapshot-create-as test s1', 'snapshot-create-as test s2', 'snapshot-current test s1', 'snapshot-current test --name', 'domstate test'] },
  { id: 'T74', commands: ['snapshot-revert test nosuch'] },
  {
    id: 'T76',
    commands: ['suspend test', 'snapshot-create-as test p1', 'resume test', 'snapshot-revert test p1', 'domstate test --reason', 'snapshot-list test'],
  },
  { id: 'T77', commands: ['blockcopy test vda libvirt-examples/copy.img --pivot --finish'] },
  { id: 'T79', commands: ['blockjob test vda --info --abort'] },
  {
    id: 'T80',
    commands: ['managedsave test', 'snapshot-create-as test s1', 'undefine test'],
    messageDiffers: { 2: 'the test driver checks the managed save first; qemu checks snapshots first (§3 "undefine check order")' },
  },
  { id: 'T81', commands: ['managedsave test', 'snapshot-create-as test s1', 'undefine test --managed-save'] },
  { id: 'T82', commands: ['snapshot-create-as test s1', 'undefine test --snapshots-metadata', 'snapshot-list test --name', 'dominfo test'] },
  { id: 'T84', commands: ['reboot test', 'domstate test --reason'] },
  { id: 'T85', commands: ['destroy test', 'domstate test --reason', 'dominfo test'] },
  { id: 'T86', commands: ['managedsave test', 'snapshot-create-as test s1', 'undefine test --snapshots-metadata', 'snapshot-list test --name'] },
  { id: 'T87', commands: ['managedsave-remove test'] },
  { id: 'T88', commands: ['managedsave test', 'start test --force-boot'] },
  { id: 'T89', commands: ['undefine nosuch'] },
];

/** Commands whose printed output both sides produce identically (no clock, CPU time or fields vmledger lacks). */
export function outputComparable(command: string): boolean {
  const [verb] = command.split(' ');
  if (verb === 'dominfo' || verb === 'snapshot-info' || verb === 'dumpxml' || verb === 'snapshot-dumpxml') return false;
  if (verb === 'snapshot-list') return command.includes('--tree') || command.includes('--name');
  return true;
}
