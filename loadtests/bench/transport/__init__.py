"""`bench transport`: httpx's own transport against `AiohttpTransport`, under the tips client.

part.py         the part: contenders, rounds, table, targets (`bench transport`)
process.py      runs one client process and reads its figures
client.py       the client process: `python -m loadtests.bench.transport.client`
contenders.py   what each contender sends through (the service's tips client, or raw asyncio)
loop.py         a fixed number of requests in flight, measured over a window
canned.py       the upstream: a ready-made tips answer, so the client sets the pace
hiding.py       hides a module from a process (httpx's transport without sniffio)

Light on purpose: the client process imports this package before it hides a module.
"""
