/**
 * The last bytes of a remote step's output stream. A server is not trusted to print a sane amount:
 * holding everything it sends lets one server exhaust the runner's memory (and past V8's ~512 MiB
 * string limit, joining the chunks throws). The tail is what matters: a step prints its `key=value`
 * facts at its end, and the error that explains a failure comes last.
 */

/** Bytes kept per stream (stdout and stderr each) of one step; stated in the README. */
export const OUTPUT_TAIL_BYTES = 1024 * 1024

/**
 * Output is copied into blocks of at most this size. Copying costs one memcpy per byte, and in return
 * memory stays about `limit` + two blocks whatever the chunks look like: keeping the chunks themselves
 * would let a server that sends a million 1-byte packets cost a million Buffer objects.
 */
const BLOCK_BYTES = 64 * 1024
/**
 * The first block of a stream is this small, and each next one twice the last, up to BLOCK_BYTES:
 * most steps print a few lines, and a 64 KiB block per stream per step, outside V8's heap, is
 * collected late (a 1,000-server status run held about 100 MB of them).
 */
const FIRST_BLOCK_BYTES = 4 * 1024

export interface StreamTail {
  text: string
  /** Bytes of the stream not in `text` (0: `text` is the whole stream). */
  dropped: number
}

export class OutputTail {
  /** Every block but the last is full; the last holds `fill` bytes. */
  private readonly blocks: Buffer[] = []
  /** The block dropped last, reused so that a long stream does not allocate a block per 64 KiB. */
  private spare?: Buffer
  private fill = 0
  /** Bytes held in `blocks`. */
  private held = 0
  /** Bytes already discarded (whole blocks and the skipped start of chunks larger than `limit`). */
  private discarded = 0

  constructor(
    readonly limit = OUTPUT_TAIL_BYTES,
    private readonly blockBytes = BLOCK_BYTES
  ) {}

  push(chunk: Uint8Array): void {
    // Only the last `limit` bytes of a chunk can survive it: skip the rest without copying it.
    let offset = Math.max(0, chunk.length - this.limit)
    this.discarded += offset
    while (offset < chunk.length) {
      let last = this.blocks.at(-1)
      if (!last || this.fill === last.length) {
        last = this.spare ?? Buffer.allocUnsafe(Math.min(this.blockBytes, last ? last.length * 2 : FIRST_BLOCK_BYTES))
        this.spare = undefined
        this.blocks.push(last)
        this.fill = 0
      }
      const n = Math.min(chunk.length - offset, last.length - this.fill)
      last.set(chunk.subarray(offset, offset + n), this.fill)
      this.fill += n
      this.held += n
      offset += n
      // The first block goes once the blocks after it hold `limit` bytes without it.
      while (this.blocks.length > 1 && this.held - this.blocks[0]!.length >= this.limit) {
        this.spare = this.blocks.shift()!
        this.held -= this.spare.length
        this.discarded += this.spare.length
      }
    }
  }

  /** Bytes pushed so far that `read()` will not return (before dropping a cut first line). */
  get dropped(): number {
    return this.discarded + Math.max(0, this.held - this.limit)
  }

  /**
   * The kept output as text, decoded only now, so a character split across chunks arrives whole.
   * When the start was dropped, the cut first line goes too: its rest could read as another fact
   * (`...ximage=` → `image=`). A character cut at the boundary decodes as U+FFFD, never as an error.
   */
  read(): StreamTail {
    const parts = this.blocks.map((block, i) => (i === this.blocks.length - 1 ? block.subarray(0, this.fill) : block))
    let bytes = Buffer.concat(parts, this.held)
    bytes = bytes.subarray(Math.max(0, bytes.length - this.limit))
    let dropped = this.dropped
    if (dropped > 0) {
      const newline = bytes.indexOf(0x0a)
      if (newline >= 0) {
        bytes = bytes.subarray(newline + 1)
        dropped += newline + 1
      }
    }
    return { text: bytes.toString('utf8'), dropped }
  }
}
