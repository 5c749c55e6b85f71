"""The floor: plain BRPOP + PUBLISH, no RQ. Run by bench/roundtrip.py in the worker interpreter."""

import sys

import redis


def main(url: str, queue: str, channel: str) -> None:
    connection = redis.Redis.from_url(url)
    while True:
        _, body = connection.brpop([queue])
        if body == b"stop":
            return
        connection.publish(channel, body)


if __name__ == "__main__":
    main(*sys.argv[1:4])
