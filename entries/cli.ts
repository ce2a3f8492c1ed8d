#!/usr/bin/env node
// The `vmledger` executable: the only module that runs the CLI. Everything else can be imported freely.
import { main } from '../services/cli/main';

await main();
