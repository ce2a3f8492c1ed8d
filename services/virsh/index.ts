// The virsh language, run on a ledger. What lives where:
//   tokenize.ts      splits a command string into commands and arguments, virsh's quoting rules
//   definitions.ts   every verb's name, options and help text (the one description of a verb), and the parser
//                    of one command's argv against it
//   session.ts       VirshSession: parses a whole command string first, then runs each command through the table
//                    of verbs and turns its Result into what virsh prints (stdout, `error:` lines, --json)
//   verbs/           the table of verbs: one handler per verb, grouped as virsh's `help` groups them (its
//                    index.ts lists the groups)
//   call.ts          what a handler is given: options, domain, and the ledger and file access in virsh's words
//   result.ts        what a handler returns, the option accessors, failures several verbs share
//   snapshotArgs.ts  snapshot-create-as's --diskspec / --memspec and its --print-xml document
//   print.ts         virsh's output formats for the queries (tables, dominfo, snapshot trees)
export { tokenize, formatCommandLine, quoteArg, splitCommaList, type TokenizeResult } from './tokenize';
export { COMMANDS, commandHelp, findCommand, groupHelp, parseArgv, type CmdDef, type OptDef, type ParsedCommand } from './definitions';
export { VirshSession, type CommandReport, type JsonReport, type SessionOptions, type SessionLedger } from './session';
export { parseDiskspec } from './snapshotArgs';
export { destinationHost } from './verbs';
