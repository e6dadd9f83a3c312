// The type check and ESLint's type-aware rules in one process, on one TypeScript program per
// project: `tsc` and `eslint` run apart would each parse, bind and type-check every file, and
// that second check was most of the CPU either of them spends. Reports what `npm run typecheck`
// and `npm run lint:code` report, in their formats; fails when either finds an error.
import { ESLint } from 'eslint';
import ts from 'typescript';

function programFor(configPath: string): ts.Program {
  const host: ts.ParseConfigFileHost = {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
      throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
    },
  };
  const parsed = ts.getParsedCommandLineOfConfigFile(configPath, undefined, host);
  if (!parsed) throw new Error(`cannot read ${configPath}`);
  return ts.createProgram({
    rootNames: parsed.fileNames,
    options: parsed.options,
    configFileParsingDiagnostics: ts.getConfigFileParsingDiagnostics(parsed),
  });
}

const projects = [programFor('tsconfig.json'), programFor('server/console/tsconfig.json')];
// ESLint's own configuration is JavaScript outside both projects: lint it with the server's
// compiler options, the way typescript-eslint's default project would.
const configProgram = ts.createProgram(['eslint.config.js'], { ...projects[0]!.getCompilerOptions(), allowJs: true });

const diagnostics = projects.flatMap((program) => ts.getPreEmitDiagnostics(program));
if (diagnostics.length > 0) {
  const formatHost: ts.FormatDiagnosticsHost = {
    getCanonicalFileName: (name) => name,
    getCurrentDirectory: () => process.cwd(),
    getNewLine: () => '\n',
  };
  const format = ts.sys.writeOutputIsTTY?.() ? ts.formatDiagnosticsWithColorAndContext : ts.formatDiagnostics;
  process.stdout.write(format(diagnostics, formatHost));
}

const eslint = new ESLint({
  overrideConfig: { languageOptions: { parserOptions: { programs: [...projects, configProgram], projectService: false } } },
});
const results = await eslint.lintFiles(['.']);
const report = await (await eslint.loadFormatter('stylish')).format(results);
if (report) process.stdout.write(report);

const lintErrors = results.reduce((sum, result) => sum + result.errorCount, 0);
if (diagnostics.some((d) => d.category === ts.DiagnosticCategory.Error) || lintErrors > 0) process.exitCode = 1;
