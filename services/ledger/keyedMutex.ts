// One async job at a time per key (a domain stream, a host, an audit stream), jobs on other keys concurrently:
// an async-mutex Mutex per key, dropped again when nobody holds or waits for it (the keys are every domain).
import { Mutex } from 'async-mutex';

export class KeyedMutex {
  private readonly locks = new Map<string, { mutex: Mutex; users: number }>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    let lock = this.locks.get(key);
    if (!lock) {
      lock = { mutex: new Mutex(), users: 0 };
      this.locks.set(key, lock);
    }
    lock.users++;
    try {
      return await lock.mutex.runExclusive(fn);
    } finally {
      if (--lock.users === 0) this.locks.delete(key);
    }
  }
}
