// libvirt's refusals as virsh prints them, read back into a Refusal: the last `error: ` line is libvirt's own
// message (the lines before it are virsh's summary, `error: Failed to start domain 'web1'`), and its prefix
// names the code (`Requested operation is not valid: ` is 55), as virErrorMsg rendered it.
import { ERROR_CODES, codeNameOfMessage, type Refusal } from '../../machines/errors';

/** Rule id of a refusal that came from libvirt itself (the command was accepted by vmledger's rules). */
export const LIBVIRT_RULE = 'LIBVIRT';

/** The libvirt error in virsh's stderr, as a Refusal with rule LIBVIRT (code 1 when the text has no known prefix). */
export function libvirtRefusal(stderr: string, rule = LIBVIRT_RULE): Refusal {
  const lines = stderr
    .split('\n')
    .filter((l) => l.startsWith('error: '))
    .map((l) => l.slice('error: '.length));
  const message = lines.at(-1) ?? (stderr.trim() || 'libvirt failed without a message');
  const codeName = codeNameOfMessage(message) ?? 'VIR_ERR_INTERNAL_ERROR';
  return { rule, code: ERROR_CODES[codeName], codeName, message };
}
