// The virsh command-line language, tokenised as virsh 9.0 does it (tools/vsh.c, vshCommandStringGetArg):
//   - blanks (space, tab) separate arguments; `;` and newlines end a command
//   - '…' quotes literally; "…" quotes with backslash escapes; a backslash outside single quotes escapes the next
//     character, and backslash-newline is removed entirely
//   - `#` at the start of an argument comments out the rest of the line (and ends the command)
//   - an unterminated "…" is an error (`missing "`), a trailing backslash too (`dangling \`); an unterminated '…'
//     runs to the end of the text, as in virsh
// virsh parses a whole command string before running any of it, so one syntax error runs nothing of that string.

export type TokenizeResult = { ok: true; commands: string[][] } | { ok: false; error: string };

export function tokenize(text: string): TokenizeResult {
  const commands: string[][] = [];
  let current: string[] = [];
  const endCommand = () => {
    if (current.length > 0) commands.push(current);
    current = [];
  };
  let p = 0;
  const n = text.length;
  while (p < n) {
    // Skip blanks and escaped newlines between arguments.
    while (p < n && (text[p] === ' ' || text[p] === '\t' || (text[p] === '\\' && text[p + 1] === '\n'))) {
      p += text[p] === '\\' ? 2 : 1;
    }
    if (p >= n) break;
    const c = text[p];
    if (c === ';' || c === '\n' || c === '\r') {
      p++;
      endCommand();
      continue;
    }
    if (c === '#') {
      while (p < n && text[p] !== '\n') p++;
      endCommand();
      continue;
    }
    let arg = '';
    let single = false;
    let double = false;
    while (p < n) {
      const ch = text[p]!;
      if (!single && !double && (ch === ' ' || ch === '\t' || ch === ';' || ch === '\n' || ch === '\r')) break;
      if (!double && ch === "'") {
        single = !single;
        p++;
        continue;
      }
      if (!single && ch === '\\') {
        p++;
        if (p >= n) return { ok: false, error: 'dangling \\' };
        if (text[p] === '\n') {
          p++;
          continue;
        }
        arg += text[p];
        p++;
        continue;
      }
      if (!single && ch === '"') {
        double = !double;
        p++;
        continue;
      }
      arg += ch;
      p++;
    }
    if (double) return { ok: false, error: 'missing "' };
    current.push(arg);
  }
  endCommand();
  return { ok: true, commands };
}

/** Quotes an argument so that `tokenize` gives it back unchanged (for echoing a command line). */
export function quoteArg(arg: string): string {
  if (arg !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function formatCommandLine(argv: readonly string[]): string {
  return argv.map(quoteArg).join(' ');
}

/**
 * virsh's `vshStringToArray`: splits a comma-separated list where `,,` stands for a literal comma
 * (used by --storage and --diskspec).
 */
export function splitCommaList(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === ',') {
      if (value[i + 1] === ',') {
        cur += ',';
        i++;
        continue;
      }
      out.push(cur);
      cur = '';
      continue;
    }
    cur += ch;
  }
  out.push(cur);
  return out;
}
