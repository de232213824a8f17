using System.CommandLine;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace PostTrain.Cli.Commands;

/// <summary>
/// The CLI's one handler for faults: every exception that ends a verb becomes one line on stderr,
/// <c>error: PATH: what happened</c> (the path when the exception carries one), and an exit code:
/// <see cref="BadInput"/> for bad input and unusable paths, <see cref="Exhausted"/> for a full disk
/// or memory that could not be allocated, <see cref="Internal"/> for anything else (a bug). The
/// stack trace is printed only with the root option --debug.
/// </summary>
public static partial class Faults
{
    public const int BadInput = 2;
    public const int Exhausted = 3;
    public const int Internal = 1;

    /// <summary>--debug: recognised by every verb (recursive), prints the stack trace of an error.</summary>
    public static readonly Option<bool> Debug = new("--debug")
    {
        Description = "On an error, print the exception and its stack trace after the one-line message",
        Recursive = true,
    };

    /// <summary>Whether --debug is on the command line (also when the parse itself failed).</summary>
    public static bool DebugIn(IEnumerable<string> args) => args.TakeWhile(a => a != "--").Contains("--debug");

    /// <summary>Writes the one-line message (and with <paramref name="debug"/> the exception) and returns the exit code.</summary>
    public static int Report(Exception e, TextWriter stderr, bool debug)
    {
        var (code, message) = Describe(e);
        stderr.WriteLine($"error: {message}");
        if (debug) stderr.WriteLine(e.ToString());
        else if (code == Internal) stderr.WriteLine("(an internal error: run again with --debug for the stack trace, and report it)");
        stderr.Flush();
        return code;
    }

    /// <summary>The exit code and the one-line message of an exception.</summary>
    public static (int Code, string Message) Describe(Exception e)
    {
        if (e is AggregateException { InnerExceptions.Count: 1 } aggregate) return Describe(aggregate.InnerException!);
        if (e is System.Reflection.TargetInvocationException { InnerException: { } inner }) return Describe(inner);
        switch (e)
        {
            case InputError:
                return (BadInput, OneLine(e.Message));
            case OutOfMemoryException:
            case InsufficientExecutionStackException:
                return (Exhausted, "out of memory: " + OneLine(e.Message));
            case IOException when IsDiskFull(e):
                return (Exhausted, WithPath(e, "no space left on device"));
            case UnauthorizedAccessException:
                return (BadInput, WithPath(e, "permission denied"));
            case FileNotFoundException f:
                return (BadInput, f.FileName is { } name ? $"{name}: no such file" : OneLine(e.Message));
            case DirectoryNotFoundException:
                return (BadInput, WithPath(e, "a directory on this path does not exist"));
            case PathTooLongException:
                return (BadInput, WithPath(e, "the path is too long"));
            case IOException:
                return (BadInput, WithPath(e, null));
        }
        if (IsAllocationFailure(e))
        {
            var bytes = AllocationSize().Match(e.Message);
            return (Exhausted, "out of memory: libtorch could not allocate " +
                               (bytes.Success ? $"{long.Parse(bytes.Groups[1].Value):N0} bytes" : "a tensor") + " (" + FirstLine(e.Message) + ")");
        }
        return (Internal, $"{e.GetType().Name}: {OneLine(e.Message)}");
    }

    /// <summary>ENOSPC (28) or EDQUOT (122) on Unix, ERROR_DISK_FULL / ERROR_HANDLE_DISK_FULL on Windows.</summary>
    public static bool IsDiskFull(Exception e) =>
        e is IOException && ((e.HResult & 0xFFFF) is 28 or 122 or 0x70 or 0x27 ||
                             e.Message.Contains("No space left on device", StringComparison.OrdinalIgnoreCase) ||
                             e.Message.Contains("Disk quota exceeded", StringComparison.OrdinalIgnoreCase) ||
                             e.Message.Contains("not enough space on the disk", StringComparison.OrdinalIgnoreCase));

    /// <summary>libtorch's allocator failing (TorchSharp raises it as an ExternalException with c10's message).</summary>
    public static bool IsAllocationFailure(Exception e) =>
        e is ExternalException or InvalidOperationException or ArgumentException &&
        (e.Message.Contains("can't allocate memory", StringComparison.Ordinal) ||
         e.Message.Contains("DefaultCPUAllocator", StringComparison.Ordinal) ||
         e.Message.Contains("std::bad_alloc", StringComparison.Ordinal));

    [GeneratedRegex(@"allocate (\d+) bytes")]
    private static partial Regex AllocationSize();

    // .NET's messages name the path in quotes: "Access to the path '/x' is denied.", "No space left on device : '/x'".
    [GeneratedRegex(@"'([^']+)'")]
    private static partial Regex QuotedPath();

    /// <summary>"PATH: what" when the message names a path, else the message itself (on one line).</summary>
    static string WithPath(Exception e, string? what)
    {
        var match = QuotedPath().Match(e.Message);
        if (!match.Success) return what is null ? OneLine(e.Message) : $"{what} ({OneLine(e.Message)})";
        var path = match.Groups[1].Value;
        if (what is null)
        {
            what = OneLine(e.Message.Remove(match.Index, match.Length)).Replace(" : ", " ").Replace("  ", " ").Trim(' ', '.', ':');
            if (what.Length == 0) what = e.GetType().Name;
            else what = char.ToLowerInvariant(what[0]) + what[1..];
        }
        return $"{path}: {what}";
    }

    static string FirstLine(string text)
    {
        var line = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault(l => l.Contains("allocate")) ?? text;
        return OneLine(line);
    }

    static string OneLine(string text) => string.Join(' ', text.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}
