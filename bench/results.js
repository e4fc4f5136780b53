'use strict'
// Shared by the benchmarks: medians, and rewriting one section of bench/RESULTS.md.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const RESULTS = path.join(__dirname, 'RESULTS.md')

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

function machine() {
  return `${os.cpus().length} × ${os.cpus()[0].model.trim()}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`
}

/** Replaces (or appends) the section between `<!-- name -->` markers. */
function writeSection(name, markdown) {
  const start = `<!-- ${name}:start -->`
  const end = `<!-- ${name}:end -->`
  const block = `${start}\n${markdown.trim()}\n${end}`
  let text = fs.existsSync(RESULTS) ? fs.readFileSync(RESULTS, 'utf8') : '# Benchmark results\n\nRatios matter, absolute numbers do not: these machines are noisy.\n'
  const re = new RegExp(`${start}[\\s\\S]*?${end}`)
  text = re.test(text) ? text.replace(re, block) : `${text.trimEnd()}\n\n${block}\n`
  fs.writeFileSync(RESULTS, text)
}

module.exports = { median, machine, writeSection }
