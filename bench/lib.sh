# Helpers shared by the bench/ scripts (sourced, never run). Not for tests: tests/e2e/lib.sh has its
# own, with cleanup traps and assertions.

# A free loopback TCP port (the kernel picks it).
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits up to 10 s for something to accept on 127.0.0.1:PORT; exits the script otherwise.
wait_port() {
    for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
    echo "$(basename "$0"): nothing on port $1" >&2
    exit 1
}

# CPU ticks (utime + stime) of PID and its direct children. Fields are read after the ")" that
# closes the command name, which may itself contain spaces.
cpu_ticks() {
    local total=0 p
    for p in $1 $(pgrep -P "$1" 2>/dev/null || true); do
        [ -r "/proc/$p/stat" ] || continue
        total=$((total + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$p/stat")))
    done
    echo "$total"
}
HZ=$(getconf CLK_TCK)

# Median of the numbers on stdin, one per line (the mean of the middle two for an even count;
# "nan" for none), so every script reports the same statistic.
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
