// The read models: plain reducers over the global log, their runner, and the queries built on them.
export * from './auditLog';
export * from './domainList';
export * from './log';
export * from './projection';
export * from './queries';
export * from './runner';
export * from './snapshotTree';
