// libvirt's error codes and how it renders messages (docs/rules.md §2, catalog §0.2), so that a script written
// for virsh sees the same text from vmledger.

export const ERROR_CODES = {
  VIR_ERR_INTERNAL_ERROR: 1,
  VIR_ERR_NO_SUPPORT: 3,
  VIR_ERR_INVALID_ARG: 8,
  VIR_ERR_OPERATION_FAILED: 9,
  VIR_ERR_XML_ERROR: 27,
  VIR_ERR_OPERATION_DENIED: 29,
  VIR_ERR_SYSTEM_ERROR: 38,
  VIR_ERR_XML_DETAIL: 35,
  VIR_ERR_NO_DOMAIN: 42,
  VIR_ERR_OPERATION_INVALID: 55,
  VIR_ERR_CONFIG_UNSUPPORTED: 67,
  VIR_ERR_OPERATION_TIMEOUT: 68,
  VIR_ERR_NO_DOMAIN_SNAPSHOT: 72,
  VIR_ERR_SNAPSHOT_REVERT_RISKY: 77,
  VIR_ERR_BLOCK_COPY_ACTIVE: 83,
  VIR_ERR_ARGUMENT_UNSUPPORTED: 74,
  VIR_ERR_OPERATION_UNSUPPORTED: 84,
  VIR_ERR_ACCESS_DENIED: 88,
} as const;
export type ErrorCodeName = keyof typeof ERROR_CODES;

/**
 * Prefix libvirt puts before the formatted text (`virErrorMsg`). Flag errors raised through
 * `virReportInvalidArg` carry code 8 with no prefix: they use `VIR_ERR_INVALID_ARG` with `prefixed: false`.
 */
const PREFIX: Partial<Record<ErrorCodeName, string>> = {
  VIR_ERR_INTERNAL_ERROR: 'internal error: ',
  VIR_ERR_INVALID_ARG: 'invalid argument: ',
  VIR_ERR_OPERATION_FAILED: 'operation failed: ',
  VIR_ERR_XML_ERROR: 'XML error: ',
  VIR_ERR_OPERATION_DENIED: 'operation forbidden: ',
  VIR_ERR_NO_DOMAIN: 'Domain not found: ',
  VIR_ERR_OPERATION_INVALID: 'Requested operation is not valid: ',
  VIR_ERR_CONFIG_UNSUPPORTED: 'unsupported configuration: ',
  VIR_ERR_OPERATION_TIMEOUT: 'Timed out during operation: ',
  VIR_ERR_NO_DOMAIN_SNAPSHOT: 'Domain snapshot not found: ',
  VIR_ERR_SNAPSHOT_REVERT_RISKY: 'revert requires force: ',
  VIR_ERR_BLOCK_COPY_ACTIVE: 'block copy still active: ',
  VIR_ERR_OPERATION_UNSUPPORTED: 'Operation not supported: ',
  VIR_ERR_ACCESS_DENIED: 'access denied: ',
  VIR_ERR_NO_SUPPORT: 'this function is not supported by the connection driver: ',
  VIR_ERR_ARGUMENT_UNSUPPORTED: 'argument unsupported: ',
};

/** The code whose prefix a rendered libvirt message starts with (reading libvirt's answers), if any. */
export function codeNameOfMessage(message: string): ErrorCodeName | undefined {
  for (const [name, prefix] of Object.entries(PREFIX)) if (prefix && message.startsWith(prefix)) return name as ErrorCodeName;
  return undefined;
}

/** Why a command was refused: the rule id, libvirt's code and libvirt's rendered message. */
export interface Refusal {
  rule: string;
  code: number;
  codeName: ErrorCodeName;
  message: string;
}

export function renderMessage(codeName: ErrorCodeName, text: string, prefixed = true): string {
  return prefixed ? (PREFIX[codeName] ?? '') + text : text;
}

export function refusal(rule: string, codeName: ErrorCodeName, text: string, prefixed = true): Refusal {
  return { rule, code: ERROR_CODES[codeName], codeName, message: renderMessage(codeName, text, prefixed) };
}

/** `virReportInvalidArg`-style flag error: code 8, no prefix. */
export function invalidArg(rule: string, text: string): Refusal {
  return refusal(rule, 'VIR_ERR_INVALID_ARG', text, false);
}

export function operationInvalid(rule: string, text: string): Refusal {
  return refusal(rule, 'VIR_ERR_OPERATION_INVALID', text);
}

/** `VIR_EXCLUSIVE_FLAGS_*`: `Flags 'A' and 'B' are mutually exclusive`. */
export function exclusiveFlags(rule: string, a: string, b: string): Refusal {
  return invalidArg(rule, `Flags '${a}' and '${b}' are mutually exclusive`);
}

/** `VIR_REQUIRE_FLAG_*`: `Flag 'REQUIRED' is required by flag 'GIVEN'`. */
export function requiredFlag(rule: string, required: string, given: string): Refusal {
  return invalidArg(rule, `Flag '${required}' is required by flag '${given}'`);
}
