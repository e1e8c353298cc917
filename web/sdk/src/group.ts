// GroupState is what the SDK knows of one watched group: each key's value
// and the change (seq) it came from. It is pure: updates and get replies go
// in, the changes to tell the app come out, so the ordering rules are
// tested without a server.

/** CounterUpdate is GROUP_COUNTER_UPDATED's event.data. */
export interface CounterUpdate {
  groupID: string;
  key: string;
  value: number;
  /** The group's change sequence (docs/API.md, "Updates"). */
  seq: number;
  /** Set when a back end deleted the key; value is then 0. */
  deleted?: true;
}

export class GroupState {
  readonly groupID: string;
  /** seq is the highest change of the group seen, by update or get. */
  seq = 0;
  /** members is true once a get said that the group is members-only. */
  members = false;
  private readonly keys = new Map<string, { value: number; seq: number }>();

  constructor(groupID: string) {
    this.groupID = groupID;
  }

  /**
   * update applies one update message; it returns the update to tell the
   * app (none for one already seen) and whether changes were missed before
   * it (a gap in seq), which a get must fill.
   */
  update(u: CounterUpdate): { emit?: CounterUpdate; gap: boolean } {
    const known = this.keys.get(u.key);
    const gap = u.seq > this.seq + 1 && this.seq > 0;
    this.seq = Math.max(this.seq, u.seq);
    if (known && known.seq >= u.seq) return { gap };
    this.keys.set(u.key, { value: u.value, seq: u.seq });
    if (u.deleted) this.keys.delete(u.key);
    return { emit: u, gap };
  }

  /**
   * baseline applies a get of every key at change seq; it returns the keys
   * whose value it changed (none when emit is false: the first baseline of a
   * group is no change). A key that the get lacks was deleted.
   */
  baseline(counters: Record<string, number>, seq: number, emit: boolean): CounterUpdate[] {
    const out: CounterUpdate[] = [];
    for (const [key, value] of Object.entries(counters)) {
      const known = this.keys.get(key);
      if (known && known.seq >= seq) continue;
      this.keys.set(key, { value, seq });
      if (emit && known?.value !== value) out.push({ groupID: this.groupID, key, value, seq });
    }
    for (const [key, known] of this.keys) {
      if (key in counters || known.seq >= seq) continue;
      this.keys.delete(key);
      if (emit) out.push({ groupID: this.groupID, key, value: 0, seq, deleted: true });
    }
    this.seq = Math.max(this.seq, seq);
    return out;
  }
}
