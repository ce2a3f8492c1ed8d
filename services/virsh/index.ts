// The virsh language: tokenizer, command table and parser, printers, and the session that runs it on a ledger.
export { tokenize, formatCommandLine, quoteArg, splitCommaList, type TokenizeResult } from './tokenize';
export { COMMANDS, commandHelp, findCommand, groupHelp, parseArgv, type CmdDef, type OptDef, type ParsedCommand } from './definitions';
export { VirshSession, destinationHost, parseDiskspec, type CommandReport, type JsonReport, type SessionOptions } from './session';
