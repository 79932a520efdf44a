// A QR code as an image the mini program can show without a canvas: qrcode-generator draws it as a GIF data URL.
import qrcode from './qrcode-generator';

interface QrCode {
  addData(data: string, mode?: 'Byte'): void;
  make(): void;
  getModuleCount(): number;
  isDark(row: number, col: number): boolean;
  createDataURL(cellSize?: number, margin?: number): string;
}

type QrFactory = ((typeNumber: number, level: 'L' | 'M' | 'Q' | 'H') => QrCode) & { stringToBytes: unknown };

function make(text: string): QrCode {
  // Type 0 = the smallest version that fits; M recovers ~15 % (a scratched phone screen at the till).
  const qr = (qrcode as unknown as QrFactory)(0, 'M');
  qr.addData(text, 'Byte');
  qr.make();
  return qr;
}

/** `data:image/gif;base64,…` for `<image src>`. */
export function qrDataUrl(text: string, cellSize = 6): string {
  return make(text).createDataURL(cellSize, cellSize * 2);
}

/** The module matrix (true = dark), e.g. to check what the image encodes. */
export function qrMatrix(text: string): boolean[][] {
  const qr = make(text);
  const n = qr.getModuleCount();
  return Array.from({ length: n }, (_, r) => Array.from({ length: n }, (_, c) => qr.isDark(r, c)));
}
