// Text for a terminal: stored strings (actors, names, messages) reach audit and virsh output through these, so a
// field can never start a new line of its own, move the cursor, recolour the screen (ANSI escapes) or reverse the
// text around it (bidi controls such as U+202E). What is escaped is shown as a visible escape (`\n`, `\x1b`,
// `\u202e`), so a reader sees that the field held it.

/** C0 and C1 controls, DEL, bidi controls and marks, line/paragraph separators, lone surrogates. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
/** The same, except newline and tab: for whole outputs whose line structure is their own. */
const UNSAFE_KEEPING_LINES = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function visible(ch: string): string {
  const named = NAMED[ch];
  if (named !== undefined) return named;
  const code = ch.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** One printed field (a table cell, a name in a sentence): every unsafe character escaped, newlines included. */
export function terminalField(text: string): string {
  return text.replace(UNSAFE, visible);
}

/** A whole output: its own newlines and tabs kept, every other unsafe character escaped (a backstop for the sinks). */
export function terminalText(text: string): string {
  return text.replace(UNSAFE_KEEPING_LINES, visible);
}
