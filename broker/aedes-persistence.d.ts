// aedes-persistence ships the types of its in-memory store (types/asyncPersistence.d.ts) but does
// not attach them to the file's own path, which broker/sessions.ts imports.
declare module 'aedes-persistence/asyncPersistence.js' {
  import MemoryPersistence = require('aedes-persistence/types/asyncPersistence');
  export = MemoryPersistence;
}
