// Minimal typings for cli-progress (it ships none): the parts scripts/codes.ts uses.
declare module 'cli-progress' {
  interface Options {
    format?: string;
    stream?: NodeJS.WritableStream;
    hideCursor?: boolean;
    clearOnComplete?: boolean;
    etaBuffer?: number;
    fps?: number;
    noTTYOutput?: boolean;
    notTTYSchedule?: number;
  }
  interface Preset {
    format?: string;
    barCompleteChar: string;
    barIncompleteChar: string;
  }
  class SingleBar {
    constructor(opts: Options, preset?: Preset);
    start(total: number, startValue: number, payload?: Record<string, unknown>): void;
    update(current: number, payload?: Record<string, unknown>): void;
    setTotal(total: number): void;
    stop(): void;
  }
  const Presets: { legacy: Preset; shades_classic: Preset; shades_grey: Preset; rect: Preset };
  const _default: { SingleBar: typeof SingleBar; Presets: typeof Presets };
  export default _default;
  export { SingleBar, Presets };
}
