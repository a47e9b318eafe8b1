/** Tests run from TypeScript source through swc; `npm test` type-checks with tsc first. */
module.exports = {
  testEnvironment: '<rootDir>/test/environment.js',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest'] },
  testTimeout: 120000,
  reporters: ['default', '<rootDir>/test/summary-reporter.js'],
};
