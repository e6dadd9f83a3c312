#!/usr/bin/env node
// The CLI's entry point. Node's on-disk compile cache is turned on before anything else loads,
// so later starts skip most of the parsing and compiling of armhook and its dependencies.
import { enableCompileCache } from 'node:module';

enableCompileCache?.();
await import('./cli.ts');
