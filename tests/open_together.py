"""Several processes open one storage at the same instant, as the same command started on several
hosts does: `python tests/open_together.py PROCESSES URL...` opens each URL in turn with
search.study.connect from PROCESSES forked processes released together by a barrier, and prints
one line per process that failed. Run as its own interpreter: forking the test process, which
has TensorFlow's threads, is not safe."""
import multiprocessing
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from search.study import connect  # noqa: E402


def open_storage(url, barrier, failures):
    barrier.wait()
    try:
        connect(url)
    except Exception as err:
        failures.put(f"{url}: {err}")


if __name__ == "__main__":
    processes, urls = int(sys.argv[1]), sys.argv[2:]
    context = multiprocessing.get_context("fork")
    failures = context.Queue()
    for url in urls:
        barrier = context.Barrier(processes)
        workers = [context.Process(target=open_storage, args=(url, barrier, failures))
                   for _ in range(processes)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    while not failures.empty():
        print(failures.get())
