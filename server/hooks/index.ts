export { HookCatalog, RESERVED_NAMES, parseHookPath } from './catalog.ts';
export type { ScriptHook } from './catalog.ts';
export type { ParamSpec, ScriptHeader } from './header.ts';
export { collectParams, applyDeclarations, secretValues, maskedParams, PARAM_LIMITS, isDeniedName } from './params.ts';
export { buildScriptEnvironment, INHERITED_VARIABLES } from './environment.ts';
export type { ScriptContext } from './environment.ts';
export { runScript } from './runner.ts';
export type { ScriptRunOptions, ScriptRunResult, OutputStream } from './runner.ts';
export { SpawnHelper } from './spawn-helper.ts';
