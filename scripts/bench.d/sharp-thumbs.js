// The sharp contender of scripts/bench: fetches every URL of a list with a
// fixed number of downloads in flight (as thumbmill's downloader does), and
// for each image makes every width from one sharp(buf) with a clone() per
// width, writing <out>/<stem>_<width>.jpg. sharp's defaults otherwise (its
// libvips concurrency, the libuv thread pool of 4, its operation cache).
//
//   node sharp-thumbs.js --sharp DIR/node_modules/sharp --urls FILE --out DIR
//                        [--inflight 8] [--widths 200,64,32] [--quality 85]
'use strict';
const fs = require('fs');
const path = require('path');

const args = {inflight: '8', widths: '200,64,32', quality: '85'};
for (let i = 2; i < process.argv.length; i += 2) {
  args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
}
for (const k of ['sharp', 'urls', 'out']) {
  if (!args[k]) { console.error(`sharp-thumbs: --${k} is required`); process.exit(2); }
}
const sharp = require(path.resolve(args.sharp));
const widths = args.widths.split(',').map(Number);
const quality = Number(args.quality);
const urls = fs.readFileSync(args.urls, 'utf8').split('\n').filter((l) => l.trim());
fs.mkdirSync(args.out, {recursive: true});

let next = 0;
let failed = 0;

async function one(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  const buf = Buffer.from(await res.arrayBuffer());
  const stem = decodeURIComponent(url.split('/').pop()).replace(/\.[^.]*$/, '');
  const img = sharp(buf);
  await Promise.all(widths.map((w) => img.clone()
      .resize({width: w, withoutEnlargement: true})
      .jpeg({quality})
      .toFile(path.join(args.out, `${stem}_${w}.jpg`))));
}

async function lane() {
  while (next < urls.length) {
    const url = urls[next++];
    try {
      await one(url);
    } catch (e) {
      failed++;
      console.error(`sharp-thumbs: ${url}: ${e.message}`);
    }
  }
}

(async () => {
  await Promise.all(Array.from({length: Number(args.inflight)}, lane));
  console.error(`sharp-thumbs: ${urls.length - failed} ok, ${failed} failed ` +
                `(sharp ${sharp.versions.sharp}, libvips ${sharp.versions.vips}, ` +
                `concurrency ${sharp.concurrency()})`);
  process.exit(failed ? 1 : 0);
})();
