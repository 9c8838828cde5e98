// Starts @20minutes/s3rver on loopback for the tests (tests/s3_test_server.h).
//
//   node --openssl-legacy-provider serve.js PORT DIRECTORY [BUCKET...]
//
// PORT 0 takes an ephemeral port. When the server listens, prints
// "ready PORT" on one line of standard output; the caller waits for that line
// (an event, not a sleep). Keys: S3RVER / S3RVER. Runs until SIGTERM or SIGINT.
//
// --openssl-legacy-provider: s3rver's continuation tokens use DES, which
// OpenSSL 3 keeps in the legacy provider; without it a truncated listing
// answers 500.
//
// One fix to s3rver 4.0.4: its XML answers escape every value twice (he.escape,
// then the XML builder's own escaping), so a listed key "a&b" arrives as
// "a&amp;amp;b" and decodes to "a&amp;b" (likewise ' < >). A real server
// escapes once; so does s3rver with he.escape made a no-op below, leaving
// the builder's escaping alone. (he is resolved from s3rver's own directory: the
// instance it uses; its decode, used to read request bodies, is left as it is.)
'use strict';

const path = require('path');
const he = require(require.resolve('he', { paths: [path.dirname(require.resolve('@20minutes/s3rver'))] }));
he.escape = (text) => text;
const S3rver = require('@20minutes/s3rver');

const [port, directory, ...buckets] = process.argv.slice(2);
if (port === undefined || directory === undefined) {
  process.stderr.write('usage: serve.js PORT DIRECTORY [BUCKET...]\n');
  process.exit(2);
}

const server = new S3rver({
  address: '127.0.0.1',
  port: Number(port),
  directory,
  silent: true,
  configureBuckets: buckets.map((name) => ({ name })),
});

server.run().then(
  (address) => process.stdout.write(`ready ${address.port}\n`),
  (err) => {
    process.stderr.write(`s3rver did not start: ${err.message}\n`);
    process.exit(1);
  });

const stop = () => server.close().finally(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
