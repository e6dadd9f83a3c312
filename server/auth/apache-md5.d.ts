// apache-md5 is CommonJS (`module.exports = fn`); its bundled typings declare an ES default
// export, which under "module": "nodenext" types the default import as the module object.
// This declaration describes what Node actually hands an ES module importing it.
declare module 'apache-md5' {
  /** Apache apr1 (or `$1$` MD5-crypt) hash of `password`, reusing the salt of `salt` when given. */
  function aprMd5(password: string, salt?: string): string;
  export = aprMd5;
}
