/** Tests run from TypeScript source through swc; `npm test` type-checks with tsc first. */
module.exports = {
  testEnvironment: '<rootDir>/test/environment.js',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest'] },
  // Examples import the package by name, as users do; in tests that is the TypeScript source.
  moduleNameMapper: { '^ingraph$': '<rootDir>/src/index.ts' },
  testTimeout: 120000,
  reporters: ['default', '<rootDir>/test/summary-reporter.js'],
};
