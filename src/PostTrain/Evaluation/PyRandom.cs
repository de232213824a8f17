namespace PostTrain.Evaluation;

/// <summary>
/// Python's random.Random, as far as lm-evaluation-harness's few-shot sampler uses it: the
/// MT19937 generator seeded from an integer as CPython seeds it (init_by_array over the
/// absolute value's 32-bit words), getrandbits, _randbelow and sample(population, k). With the
/// same seed it draws the same few-shot examples as lm-eval (whose fewshot seed is 1234).
/// </summary>
public sealed class PyRandom
{
    const int N = 624, M = 397;
    readonly uint[] mt = new uint[N];
    int index = N + 1;

    public PyRandom(long seed)
    {
        ulong a = (ulong)Math.Abs(seed);
        var key = new List<uint>();
        do
        {
            key.Add((uint)(a & 0xffffffff));
            a >>= 32;
        } while (a != 0);
        InitByArray(key);
    }

    void InitGenRand(uint s)
    {
        mt[0] = s;
        for (int i = 1; i < N; i++) mt[i] = 1812433253u * (mt[i - 1] ^ (mt[i - 1] >> 30)) + (uint)i;
        index = N;
    }

    void InitByArray(List<uint> key)
    {
        InitGenRand(19650218u);
        int i = 1, j = 0;
        for (int k = Math.Max(N, key.Count); k > 0; k--)
        {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525u)) + key[j] + (uint)j;
            i++;
            j++;
            if (i >= N) { mt[0] = mt[N - 1]; i = 1; }
            if (j >= key.Count) j = 0;
        }
        for (int k = N - 1; k > 0; k--)
        {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941u)) - (uint)i;
            i++;
            if (i >= N) { mt[0] = mt[N - 1]; i = 1; }
        }
        mt[0] = 0x80000000u;
    }

    uint NextUInt32()
    {
        if (index >= N)
        {
            for (int k = 0; k < N; k++)
            {
                uint y = (mt[k] & 0x80000000u) | (mt[(k + 1) % N] & 0x7fffffffu);
                mt[k] = mt[(k + M) % N] ^ (y >> 1) ^ ((y & 1) != 0 ? 0x9908b0dfu : 0u);
            }
            index = 0;
        }
        uint x = mt[index++];
        x ^= x >> 11;
        x ^= (x << 7) & 0x9d2c5680u;
        x ^= (x << 15) & 0xefc60000u;
        x ^= x >> 18;
        return x;
    }

    /// <summary>getrandbits(k) for 0 &lt; k &lt;= 64.</summary>
    public ulong GetRandBits(int k)
    {
        if (k <= 32) return NextUInt32() >> (32 - k);
        ulong low = NextUInt32();
        ulong high = NextUInt32() >> (64 - k);
        return low | (high << 32);
    }

    /// <summary>_randbelow(n): uniform in [0, n) by rejection over bit_length(n) bits.</summary>
    public int RandBelow(int n)
    {
        if (n <= 0) return 0;
        int k = 64 - System.Numerics.BitOperations.LeadingZeroCount((ulong)n);
        ulong r = GetRandBits(k);
        while (r >= (ulong)n) r = GetRandBits(k);
        return (int)r;
    }

    /// <summary>random.sample(population, k): k distinct elements in selection order.</summary>
    public List<T> Sample<T>(IReadOnlyList<T> population, int k)
    {
        int n = population.Count;
        if (k < 0 || k > n) throw new ArgumentException($"sample larger than population ({k} of {n})");
        var result = new List<T>(k);
        int setSize = 21;
        if (k > 5) setSize += (int)Math.Pow(4, Math.Ceiling(Math.Log(k * 3) / Math.Log(4)));
        if (n <= setSize)
        {
            var pool = population.ToList();
            for (int i = 0; i < k; i++)
            {
                int j = RandBelow(n - i);
                result.Add(pool[j]);
                pool[j] = pool[n - i - 1];
            }
        }
        else
        {
            var selected = new HashSet<int>();
            for (int i = 0; i < k; i++)
            {
                int j = RandBelow(n);
                while (!selected.Add(j)) j = RandBelow(n);
                result.Add(population[j]);
            }
        }
        return result;
    }
}
