'use strict'
// stowage's native threads run below the JavaScript thread's priority (src/js/runtime.rs),
// so transfers that keep every core busy do not hold up the event loop.
const fs = require('node:fs')
const { StorageManager } = require('..')
const { tmpDir } = require('./helpers')

/** Field 19 of /proc/<pid>/task/<tid>/stat; the name before it may hold spaces. */
const niceIn = (stat) => Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])

/** This process's threads; one that ends while it is read is left out. */
function threads() {
  const found = []
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      const dir = `/proc/self/task/${tid}`
      found.push({ name: fs.readFileSync(`${dir}/comm`, 'utf8').trim(), nice: niceIn(fs.readFileSync(`${dir}/stat`, 'utf8')) })
    } catch (e) {
      if (e.code !== 'ENOENT') throw e
    }
  }
  return found
}

test('the runtime threads run 5 nice levels below the JavaScript thread', async () => {
  const storage = new StorageManager({ local: tmpDir('runtime') })
  await storage.put('a.txt', Buffer.from('hello'))
  expect((await storage.get('a.txt')).toString()).toBe('hello')
  const jsNice = niceIn(fs.readFileSync('/proc/self/stat', 'utf8'))
  const runtime = threads().filter((t) => t.name.startsWith('tokio-'))
  expect(runtime.length).toBeGreaterThan(0)
  for (const t of runtime) expect(t).toEqual({ name: t.name, nice: Math.min(jsNice + 5, 19) })
  expect(threads().find((t) => t.name === 'node' || t.name.startsWith('jest')).nice).toBe(jsNice)
})
