// Types of bin/commands.mjs, for the tests that read the command table.
export interface CommandOption {
  type: 'string' | 'boolean';
  value?: string;
  help: string;
}
export interface Command {
  name: string;
  summary: string;
  usage: string;
  example: string;
  options: Record<string, CommandOption>;
  positionals?: string[];
  needsKey?: boolean;
}
export const COMMANDS: Command[];
