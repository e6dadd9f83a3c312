// ESLint: JavaScript's and typescript-eslint's recommended rules, with type information (each file
// is checked with the tsconfig that covers it: the server's, or the browser console's).
// Formatting is Prettier's job (.prettierrc.json); no rule here is about layout.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'bench/results/', 'test/fixtures/'] },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // node:test's test() and describe() return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] },
          ],
        },
      ],
      // `async` is how a function keeps a promise-returning contract (the JobStore interface,
      // fastify handlers, the identity library's callbacks) whether or not its body awaits.
      '@typescript-eslint/require-await': 'off',
      // A leading underscore marks what is unused on purpose (a destructured field left out, a loop variable).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
    },
  },
  {
    // The console's DOM listeners are async and catch and show their own errors; the browser
    // ignores what a listener returns.
    files: ['server/console/**/*.ts'],
    rules: { '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }] },
  },
  {
    // Tests read answers as untyped JSON and assert on their fields; typing every document they
    // look into would add casts, not safety.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // Tests destructure module namespaces (`const { join } = await import('node:path')`) and
      // wrap methods of objects they spy on.
      '@typescript-eslint/unbound-method': 'off',
    },
  },
);
