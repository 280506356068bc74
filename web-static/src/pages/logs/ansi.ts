// ANSI escape sequences in log text: SGR colour codes (ESC [ … m) become styled segments, which
// the view renders as <span>s with text children (never as HTML); every other control sequence
// is dropped.

export interface AnsiStyle {
  /** 0–15: one of the 16 palette colours (a CSS class); a string: an `rgb()` computed here. */
  fg: number | string | null;
  bg: number | string | null;
  bold: boolean;
  dim: boolean;
  italic: boolean;
  underline: boolean;
}

export interface AnsiSegment {
  text: string;
  style: AnsiStyle | null;
}

const PLAIN: AnsiStyle = { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false };

// CSI sequences (ESC [ params final), OSC sequences (ESC ] … BEL/ST), other two-byte escapes.
// eslint-disable-next-line no-control-regex
const ESCAPES = /\x1b\[([0-9;:?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]?/g;

/** The text without any escape sequence. */
export function stripAnsi(text: string): string {
  return text.includes("\x1b") ? text.replace(ESCAPES, "") : text;
}

/** Splits text into segments by its SGR codes. */
export function parseAnsi(text: string): AnsiSegment[] {
  if (!text.includes("\x1b")) return [{ text, style: null }];
  const segments: AnsiSegment[] = [];
  let style: AnsiStyle = PLAIN;
  let last = 0;
  ESCAPES.lastIndex = 0;
  for (let m = ESCAPES.exec(text); m !== null; m = ESCAPES.exec(text)) {
    if (m.index > last) push(segments, text.slice(last, m.index), style);
    last = m.index + m[0].length;
    if (m[2] === "m") style = applySgr(style, m[1] ?? "");
  }
  if (last < text.length) push(segments, text.slice(last), style);
  return segments;
}

function push(segments: AnsiSegment[], text: string, style: AnsiStyle): void {
  segments.push({ text, style: isPlain(style) ? null : style });
}

function isPlain(s: AnsiStyle): boolean {
  return s.fg === null && s.bg === null && !s.bold && !s.dim && !s.italic && !s.underline;
}

function applySgr(current: AnsiStyle, params: string): AnsiStyle {
  const codes = params === "" ? [0] : params.split(/[;:]/).map((p) => (p === "" ? 0 : Number(p)));
  let s = { ...current };
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i] ?? 0;
    if (c === 0) s = { ...PLAIN };
    else if (c === 1) s.bold = true;
    else if (c === 2) s.dim = true;
    else if (c === 3) s.italic = true;
    else if (c === 4) s.underline = true;
    else if (c === 22) s = { ...s, bold: false, dim: false };
    else if (c === 23) s.italic = false;
    else if (c === 24) s.underline = false;
    else if (c >= 30 && c <= 37) s.fg = c - 30;
    else if (c >= 90 && c <= 97) s.fg = c - 90 + 8;
    else if (c === 39) s.fg = null;
    else if (c >= 40 && c <= 47) s.bg = c - 40;
    else if (c >= 100 && c <= 107) s.bg = c - 100 + 8;
    else if (c === 49) s.bg = null;
    else if (c === 38 || c === 48) {
      const mode = codes[i + 1];
      let colour: number | string | null = null;
      if (mode === 5) {
        colour = xterm256(codes[i + 2] ?? 0);
        i += 2;
      } else if (mode === 2) {
        colour = rgb(codes[i + 2] ?? 0, codes[i + 3] ?? 0, codes[i + 4] ?? 0);
        i += 4;
      } else {
        break;
      }
      if (c === 38) s.fg = colour;
      else s.bg = colour;
    }
  }
  return s;
}

function clamp(n: number): number {
  return Number.isFinite(n) ? Math.max(0, Math.min(255, Math.round(n))) : 0;
}

function rgb(r: number, g: number, b: number): string {
  return `rgb(${clamp(r)}, ${clamp(g)}, ${clamp(b)})`;
}

function xterm256(n: number): number | string {
  const i = clamp(n);
  if (i < 16) return i;
  if (i < 232) {
    const v = i - 16;
    const level = (x: number) => (x === 0 ? 0 : 55 + x * 40);
    return rgb(level(Math.floor(v / 36)), level(Math.floor(v / 6) % 6), level(v % 6));
  }
  const grey = 8 + (i - 232) * 10;
  return rgb(grey, grey, grey);
}
