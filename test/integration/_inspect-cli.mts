// Runs `pyvisor inspect` through commander exactly as src/cli.ts wires it
// (registerInspectCommand on a program), for inspector.cli.test.ts.
import { Command } from 'commander';
import { registerInspectCommand } from '../../src/cli/inspect.js';

const program = new Command('pyvisor');
registerInspectCommand(program);
await program.parseAsync(process.argv);
