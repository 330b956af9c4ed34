"""Build the bundled sample export (training_data/sample_chat/) from the chitchat-dataset package.

    pip download --no-deps -d /tmp/cc chitchat-dataset==0.9.0
    python scripts/make_sample_data.py /tmp/cc/chitchat_dataset-0.9.0-py3-none-any.whl

chitchat-dataset (MIT, BYU PCC lab) holds 7k real two-person chats between volunteers, with
anonymous sender ids and timestamps. We take the most prolific sender as "Sam" (the person to graft)
and write their chats as WhatsApp Android exports, one file per chat partner, so the demo runs the
real parse -> split -> train path. Partner ids are replaced by invented first names.

    python scripts/make_sample_data.py /tmp/cc/chitchat_dataset-0.9.0-py3-none-any.whl --control

--control builds the persona-free control set for the fidelity evaluation (bench/bench_fidelity.py):
the same construction and size, but from chats Sam is not in, "me" a random side of each chat, and
each person in at most two chats, so "me" is hundreds of different people. Every metric that claims to measure *the person* must be
near chance on it (default output: training_data/control_chat).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import zipfile
from datetime import datetime
from pathlib import Path

ME_NAME = "Sam"
NAMES = ["Alex", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn", "Drew", "Robin",
         "Charlie", "Skyler", "Reese", "Parker", "Rowan", "Emerson", "Finley", "Hayden", "Kendall", "Logan",
         "Peyton", "Sage", "Blake", "Cameron", "Dakota", "Elliot", "Frankie", "Harper", "Jesse"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wheel", help="path to the chitchat_dataset wheel")
    ap.add_argument("--out", default=None,
                    help="output folder (default: training_data/sample_chat, or training_data/control_chat with "
                         "--control)")
    ap.add_argument("--control", action="store_true",
                    help="persona-free control: chats without Sam, 'me' = a random side of each chat")
    ap.add_argument("--max-bytes", type=int, default=1_800_000, help="stop adding chats past this size")
    ap.add_argument("--seed", type=int, default=0, help="seed for the chat order (and the control's sides)")
    args = ap.parse_args()
    args.out = args.out or ("training_data/control_chat" if args.control else "training_data/sample_chat")

    with zipfile.ZipFile(args.wheel) as zf:
        data = json.loads(zf.read("chitchat_dataset/dataset.json"))
        license_text = zf.read("chitchat_dataset-0.9.0.dist-info/LICENSE").decode()

    per_sender = collections.Counter()
    for conv in data.values():
        for sender in {m["sender"] for thread in conv["messages"] for m in thread}:
            per_sender[sender] += 1
    sam = per_sender.most_common(1)[0][0]

    def senders(c: dict) -> list[str]:
        return sorted({m["sender"] for t in c["messages"] for m in t})

    if args.control:  # chats without Sam; "me" is drawn per chat below
        convs = [c for c in data.values() if sam not in senders(c) and len(senders(c)) == 2]
    else:
        convs = [c for c in data.values() if sam in senders(c)]
    convs.sort(key=lambda c: c["messages"][0][0]["timestamp"])
    size = 0
    rng = random.Random(args.seed)
    rng.shuffle(convs)
    picked = []
    used: collections.Counter = collections.Counter()
    for conv in convs:
        if args.control:
            # each person in two chats at most: a prolific sender in many chats (one wrote ~2,000 of the
            # control's lines when chats were drawn freely) is a persona of their own, "me" in some chats and
            # the partner in others, so the control was not persona-free (its who-wrote-it hits@1 was 30 %
            # against a chance of 10 %). Two chats, not one, so the control reaches the sample's size.
            if any(used[p] >= 2 for p in senders(conv)):
                continue
        me = rng.choice(senders(conv)) if args.control else sam
        lines = []
        other = None
        for thread in conv["messages"]:
            for m in thread:
                if m["sender"] != me:
                    other = m["sender"]
                lines.append(m)
        if other is None:
            continue
        conv_bytes = sum(len(m["text"].encode()) + 30 for m in lines)
        if size + conv_bytes > args.max_bytes:
            continue
        size += conv_bytes
        used.update(senders(conv))  # Counter: +1 per person
        picked.append((other, me, lines))

    picked.sort(key=lambda p: p[2][0]["timestamp"])
    by_partner_id: dict[str, list] = collections.defaultdict(list)
    for other, me, lines in picked:
        by_partner_id[other].extend((m, m["sender"] == me) for m in lines)
    # the 29 most active partners keep a name; the rest are grouped under generic names by rank
    ranked = sorted(by_partner_id, key=lambda s: -len(by_partner_id[s]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("WhatsApp Chat with *.txt"):
        old.unlink()
    files: dict[str, list[str]] = collections.defaultdict(list)
    for rank, sender in enumerate(ranked):
        name = NAMES[rank % len(NAMES)]
        for m, mine in sorted(by_partner_id[sender], key=lambda p: p[0]["timestamp"]):
            ts = datetime.strptime(m["timestamp"], "%Y-%m-%dT%H:%M:%SZ")
            who = ME_NAME if mine else name
            text = m["text"].replace("\r\n", "\n").replace("\r", "\n").strip()
            if text:
                files[name].append(f"{ts:%d/%m/%Y, %H:%M} - {who}: {text}\n")
    for name, lines in files.items():
        header = ("01/05/2018, 00:00 - Messages and calls are end-to-end encrypted. No one outside of this chat, "
                  "not even WhatsApp, can read or listen to them.\n")
        (out / f"WhatsApp Chat with {name}.txt").write_text(header + "".join(lines), encoding="utf-8")
    (out / "LICENSE-chitchat-dataset.txt").write_text(
        "Sample chats from chitchat-dataset 0.9.0 (https://github.com/BYU-PCCL/chitchat-dataset),\n"
        "rewritten as WhatsApp exports by scripts/make_sample_data.py. Sender ids replaced by invented names.\n"
        + ("Persona-free control (--control): chats without the sample's Sam; 'Sam' is a random side of each "
           "chat.\n" if args.control else "") + "\n"
        + license_text, encoding="utf-8")
    print(f"wrote {len(files)} chats, {sum(map(len, files.values()))} messages, {len(picked)} conversations to {out}")


if __name__ == "__main__":
    main()
