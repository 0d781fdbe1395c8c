// The gateway's log: one JSON object per event. A leaf module (it imports
// nothing) so every layer can log without depending on another. Never put a
// password, token or connection string with its password in an event.

export type LogEvent = Readonly<Record<string, string | number | boolean | null | undefined>>;

export type Log = (event: LogEvent) => void;
