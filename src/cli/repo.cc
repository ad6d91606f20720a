// `hearth repo`: the command line of the backup commands (restic's flags and
// subcommands). The commands themselves are in repo_cmds.cc.
#include "cli/repo.h"

#include <memory>

namespace hearth::cli {

namespace {

constexpr const char* kGlobalNote =
    "Repository flags (before or after the subcommand): -r/--repo DIR, --password-file FILE,\n"
    "--password-command CMD, --json, -q, -v, --compression, --pack-size, --no-lock,\n"
    "--retry-lock DURATION; see 'hearth repo --help'.";

std::string Footer(const std::string& examples) {
  return "Examples:\n" + examples + "\n" + kGlobalNote;
}

CLI::Validator DurationValidator() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        return ParseRetryDuration(s) ? ""
                                     : "takes a duration like 30s, 5m, 1h30m, not \"" + s + "\"";
      },
      "DURATION");
}

CLI::Validator KeepWithinValidator() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        return ParseKeepWithin(s) ? ""
                                  : "takes a duration like 7d, 2m, 1y5m7d2h, not \"" + s + "\"";
      },
      "DURATION");
}

CLI::Validator StringValidator(std::string (*fn)(const std::string&), const char* name) {
  return CLI::Validator([fn](std::string& s) { return fn(s); }, name);
}

CLI::Validator TimeValidator() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        return ParseBackupTime(s)
                   ? ""
                   : "takes \"YYYY-MM-DD HH:MM:SS\" (local time) or RFC 3339, not \"" + s + "\"";
      },
      "TIME");
}

void AddFilterFlags(CLI::App* cmd, SnapshotFilter& f, const char* what) {
  cmd->add_option("-H,--host", f.hosts, std::string("Only ") + what + " of this host (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option(
         "--tag", f.tags,
         std::string("Only ") + what + " with these tags (a,b = both; repeatable = either)")
      ->allow_extra_args(false);
  cmd->add_option("--path", f.paths,
                  std::string("Only ") + what + " that include this path (repeatable = all)")
      ->allow_extra_args(false);
}

// Makes a subcommand that passes unknown flags up (repository flags work
// after the subcommand too) and sets `run` when chosen.
template <typename Args, typename Fn>
CLI::App* AddCommand(CLI::App* parent, const char* name, const char* help,
                     const std::string& examples, GlobalOptions& g,
                     const std::shared_ptr<RepoGlobals>& rg, Command& run,
                     std::shared_ptr<Args> args, Fn fn) {
  auto* cmd = parent->add_subcommand(name, help);
  cmd->fallthrough();
  cmd->footer(Footer(examples));
  cmd->callback(
      [&g, &run, rg, args, fn] { run = [&g, rg, args, fn] { return fn(g, *rg, *args); }; });
  return cmd;
}

}  // namespace

void RegisterRepo(CLI::App& app, GlobalOptions& g, Command& run) {
  auto rg = std::make_shared<RepoGlobals>();
  auto* repo = app.add_subcommand(
      "repo", "Back up and restore files with restic-compatible (format v2) repositories");
  repo->require_subcommand(1);
  repo->fallthrough();
  repo->add_option("-r,--repo", rg->repo,
                   "Repository: a directory, sftp:user@host:/path, rest:http://host:8000/, "
                   "s3:https://host/bucket/prefix (default: $HEARTH_REPOSITORY, then "
                   "$RESTIC_REPOSITORY)");
  repo->add_option("--password-file", rg->password_file,
                   "Read the repository password from FILE (also: HEARTH_PASSWORD_FILE, "
                   "RESTIC_PASSWORD_FILE)");
  repo->add_option("--password-command", rg->password_command,
                   "Run CMD with /bin/sh -c; the first line it prints is the password");
  repo->add_flag("--json", rg->json, "Machine-readable output (restic's JSON shapes)");
  repo->add_flag("-q,--quiet", rg->quiet, "Print only errors and requested data; no progress");
  repo->add_flag("-v,--verbose", rg->verbose, "More output (repeatable)");
  repo->add_option("--compression", rg->compression,
                   "Data compression: auto (default), off, fastest, better, max")
      ->check(CLI::IsMember({"auto", "off", "fastest", "better", "max"}));
  repo->add_option("--pack-size", rg->pack_size_mib,
                   "Target pack size in MiB, 4 to 128 (default 16)")
      ->check(CLI::Range(4, 128));
  repo->add_flag("--no-lock", rg->no_lock,
                 "Read-only commands take no lock (for read-only repositories)");
  repo->add_option("--retry-lock", rg->retry_lock,
                   "Wait up to DURATION (30s, 5m, 1h) for a locked repository")
      ->check(DurationValidator());
  repo->add_option("-o,--option", rg->options,
                   "Backend option key=value (repeatable; see docs/repo.md: s3.region, "
                   "s3.bucket-lookup, sftp.identity, sftp.known-hosts, ...)");
  repo->add_option("--cacert", rg->cacert, "Also trust the CA certificates in FILE (PEM) for https");
  repo->add_option("--limit-upload", rg->limit_upload_kib, "Limit uploads to KiB/s (0 = none)")
      ->check(CLI::NonNegativeNumber);
  repo->add_option("--limit-download", rg->limit_download_kib,
                   "Limit downloads to KiB/s (0 = none)")
      ->check(CLI::NonNegativeNumber);
  repo->footer(
      "Commands: init, backup, restore, snapshots, ls, cat, list, diff, check, forget, prune,\n"
      "stats, unlock, key, copy. Password: --password-file, --password-command, HEARTH_PASSWORD_FILE,\n"
      "HEARTH_PASSWORD_COMMAND, HEARTH_PASSWORD (then the RESTIC_ ones), else a prompt on a "
      "terminal.\n"
      "Exit codes: 0 ok, 1 fatal error, 3 backup saved but some files were unreadable, 10 no\n"
      "repository, 11 repository locked, 12 wrong password, 64 usage error, 130 interrupted.\n"
      "Examples:\n"
      "  hearth repo -r /srv/backup init\n"
      "  hearth repo -r /srv/backup backup /home /etc --exclude '*.cache'\n"
      "  RESTIC_REPOSITORY=/srv/backup RESTIC_PASSWORD_FILE=~/.pw hearth repo snapshots\n"
      "Run 'hearth repo COMMAND --help' for a command's flags.");

  {
    auto a = std::make_shared<RepoInitArgs>();
    auto* cmd = AddCommand(repo, "init", "Create a new repository (asks for the password twice)",
                           "  hearth repo -r /srv/backup init\n"
                           "  hearth repo -r /srv/backup --password-file ~/.backup-pw init\n"
                           "  hearth repo -r /srv/old init --repository-version 1",
                           g, rg, run, a, RunRepoInit);
    cmd->add_option("--repository-version", a->repository_version,
                    "Repository format: 2 (default, compressed), 1, latest or stable")
        ->check(CLI::IsMember({"1", "2", "latest", "stable"}))
        ->capture_default_str();
  }
  {
    auto a = std::make_shared<RepoBackupArgs>();
    auto* cmd =
        AddCommand(repo, "backup", "Save files and directories as a new snapshot",
                   "  hearth repo -r /srv/backup backup /home /etc\n"
                   "  hearth repo backup /srv/data --exclude '*.tmp' --tag nightly -x\n"
                   "  hearth repo backup --json /home | jq 'select(.message_type==\"summary\")'",
                   g, rg, run, a, RunRepoBackup);
    cmd->add_option("PATH", a->paths, "Files and directories to back up")->required();
    cmd->add_option("-e,--exclude", a->excludes,
                    "Exclude files matching this pattern (restic syntax, ** allowed; repeatable)")
        ->allow_extra_args(false);
    cmd->add_option("--exclude-file", a->exclude_files,
                    "Read exclude patterns from FILE, one a line (repeatable)")
        ->allow_extra_args(false);
    cmd->add_flag("--with-atime,!--without-atime", a->with_atime,
                  "Record access times (default on, as restic's --with-atime; --without-atime "
                  "stores the mtime instead, like restic's default)");
    cmd->add_flag("-x,--one-file-system", a->one_file_system,
                  "Do not cross file system boundaries");
    cmd->add_option("--tag", a->tags, "Add tags to the snapshot (a,b or repeat the flag)")
        ->allow_extra_args(false);
    cmd->add_option("-H,--host", a->host, "Host name to record (default: this machine's)");
    cmd->add_option("--parent", a->parent,
                    "Compare against this snapshot (default: latest of the same host and paths)");
    cmd->add_flag("-f,--force", a->force, "Re-read every file, ignoring the parent snapshot");
    cmd->add_option("--time", a->time,
                    "Snapshot time: \"YYYY-MM-DD HH:MM:SS\" (local) or RFC 3339 (default: now)")
        ->check(TimeValidator());
    cmd->add_flag("-n,--dry-run", a->dry_run, "Do everything but write to the repository");
  }
  {
    auto a = std::make_shared<RepoRestoreArgs>();
    auto* cmd = AddCommand(repo, "restore", "Restore a snapshot (or part of it) into a directory",
                           "  hearth repo restore latest --target /tmp/restore\n"
                           "  hearth repo restore 1a2b3c4d:/home/alice --target /tmp/alice\n"
                           "  hearth repo restore latest -t /tmp/r --include '/etc/**' --verify\n"
                           "  hearth repo restore latest --host web1 --path /srv -t /tmp/r",
                           g, rg, run, a, RunRepoRestore);
    cmd->add_option("SNAPSHOT", a->snapshot,
                    "Snapshot ID, prefix or 'latest', optionally :SUBPATH inside it")
        ->required();
    cmd->add_option("-t,--target", a->target,
                    "Directory to restore into (files land at TARGET/<original path>)")
        ->required();
    cmd->add_option("-i,--include", a->includes,
                    "Restore only paths matching this pattern (repeatable)")
        ->allow_extra_args(false);
    cmd->add_option("-e,--exclude", a->excludes,
                    "Do not restore paths matching this pattern (repeatable)")
        ->allow_extra_args(false);
    cmd->add_flag("--verify", a->verify, "Read the restored files back and verify their content");
    cmd->add_flag("--sparse", a->sparse,
                  "Leave holes for zero blocks (the default; for restic scripts)");
    cmd->add_flag("--no-sparse", a->no_sparse, "Write zero blocks instead of leaving holes");
    AddFilterFlags(cmd, a->filter, "consider snapshots for 'latest'");
  }
  {
    auto a = std::make_shared<RepoSnapshotsArgs>();
    auto* cmd = AddCommand(repo, "snapshots", "List snapshots",
                           "  hearth repo snapshots\n"
                           "  hearth repo snapshots --host web1 --tag nightly --latest 3\n"
                           "  hearth repo snapshots --json | jq '.[].short_id'",
                           g, rg, run, a, RunRepoSnapshots);
    AddFilterFlags(cmd, a->filter, "list snapshots");
    cmd->add_option("--latest", a->latest, "Only the last N snapshots of each host and path set");
    cmd->add_option("ID", a->ids, "Only these snapshots (ID, prefix or 'latest')");
  }
  {
    auto a = std::make_shared<RepoLsArgs>();
    auto* cmd = AddCommand(repo, "ls", "List the files in a snapshot",
                           "  hearth repo ls latest\n"
                           "  hearth repo ls -l 1a2b3c4d /home/alice\n"
                           "  hearth repo ls latest /etc --recursive --json",
                           g, rg, run, a, RunRepoLs);
    cmd->add_option("SNAPSHOT", a->snapshot, "Snapshot ID, prefix or 'latest'")->required();
    cmd->add_option("PATH", a->dirs, "List only these directories (their entries)");
    cmd->add_flag("-l,--long", a->long_format, "Show mode, owner, size and time like ls -l");
    cmd->add_flag("--recursive", a->recursive, "With PATH: list everything below it");
  }
  {
    auto a = std::make_shared<RepoCatArgs>();
    auto* cmd = AddCommand(repo, "cat", "Print a repository object (decrypted)",
                           "  hearth repo cat config\n"
                           "  hearth repo cat snapshot 1a2b3c4d\n"
                           "  hearth repo cat tree latest:/home/alice\n"
                           "  hearth repo cat blob 5e6f... > chunk",
                           g, rg, run, a, RunRepoCat);
    cmd->add_option("TYPE", a->kind, "config, index, snapshot, key, lock, pack, blob or tree")
        ->required()
        ->check(
            CLI::IsMember({"config", "index", "snapshot", "key", "lock", "pack", "blob", "tree"}));
    cmd->add_option("ID", a->id, "The object's ID (or prefix); tree takes SNAPSHOT[:PATH]");
  }
  {
    auto a = std::make_shared<RepoListArgs>();
    auto* cmd = AddCommand(repo, "list", "List the IDs of repository files or blobs",
                           "  hearth repo list snapshots\n"
                           "  hearth repo list locks\n"
                           "  hearth repo list blobs | wc -l",
                           g, rg, run, a, RunRepoList);
    cmd->add_option("TYPE", a->kind, "blobs, packs, index, snapshots, keys or locks")
        ->required()
        ->check(CLI::IsMember({"blobs", "packs", "index", "snapshots", "keys", "locks"}));
  }
  {
    auto a = std::make_shared<RepoDiffArgs>();
    auto* cmd = AddCommand(repo, "diff", "Show what changed between two snapshots",
                           "  hearth repo diff 1a2b3c4d 5e6f7a8b\n"
                           "  hearth repo diff --metadata 1a2b3c4d latest\n"
                           "  hearth repo diff --json 1a2b3c4d latest",
                           g, rg, run, a, RunRepoDiff);
    cmd->add_option("SNAPSHOT1", a->a, "The older snapshot")->required();
    cmd->add_option("SNAPSHOT2", a->b, "The newer snapshot")->required();
    cmd->add_flag("--metadata", a->metadata, "Also show metadata-only changes (U)");
  }
  {
    auto a = std::make_shared<RepoCheckArgs>();
    auto* cmd = AddCommand(repo, "check", "Check the repository's structure (and data) for errors",
                           "  hearth repo check\n"
                           "  hearth repo check --read-data\n"
                           "  hearth repo check --read-data-subset 1/7   # one seventh, e.g. daily",
                           g, rg, run, a, RunRepoCheck);
    cmd->add_flag("--read-data", a->read_data, "Also read every pack and verify every blob");
    cmd->add_option("--read-data-subset", a->read_data_subset,
                    "Read only a subset: n/t, a percentage (5%) or a size (500M)")
        ->check(StringValidator(ValidateReadDataSubset, "SUBSET"));
  }
  {
    auto a = std::make_shared<RepoForgetArgs>();
    auto* cmd =
        AddCommand(repo, "forget", "Remove snapshots by ID or by a keep policy",
                   "  hearth repo forget 1a2b3c4d\n"
                   "  hearth repo forget --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --prune\n"
                   "  hearth repo forget --keep-last 3 --dry-run\n"
                   "  hearth repo forget --keep-within 30d --keep-tag important",
                   g, rg, run, a, RunRepoForget);
    cmd->add_option("ID", a->ids, "Snapshots to remove (ignores the policy)");
    cmd->add_option("-l,--keep-last", a->keep_last, "Keep the last N snapshots");
    cmd->add_option("-H,--keep-hourly", a->keep_hourly, "Keep the last N hourly snapshots");
    cmd->add_option("-d,--keep-daily", a->keep_daily, "Keep the last N daily snapshots");
    cmd->add_option("-w,--keep-weekly", a->keep_weekly, "Keep the last N weekly snapshots");
    cmd->add_option("-m,--keep-monthly", a->keep_monthly, "Keep the last N monthly snapshots");
    cmd->add_option("-y,--keep-yearly", a->keep_yearly, "Keep the last N yearly snapshots");
    cmd->add_option("--keep-tag", a->keep_tags, "Keep snapshots with this tag (repeatable)")
        ->allow_extra_args(false);
    cmd->add_option("--keep-within", a->keep_within,
                    "Keep snapshots newer than DURATION before the latest (1y5m7d2h)")
        ->check(KeepWithinValidator());
    cmd->add_option("-g,--group-by", a->group_by,
                    "Apply the policy per group: host, paths, tags, comma-separated, or ''")
        ->check(StringValidator(ValidateGroupBy, "GROUP"))
        ->capture_default_str();
    cmd->add_option("--host", a->filter.hosts, "Only consider snapshots of this host (repeatable)")
        ->allow_extra_args(false);
    cmd->add_option("--tag", a->filter.tags, "Only consider snapshots with these tags (repeatable)")
        ->allow_extra_args(false);
    cmd->add_option("--path", a->filter.paths,
                    "Only consider snapshots with this path (repeatable)")
        ->allow_extra_args(false);
    cmd->add_flag("-n,--dry-run", a->dry_run, "Only show what would be removed");
    cmd->add_flag("--prune", a->prune, "Run prune afterwards to free the space");
    cmd->add_option("--max-unused", a->max_unused,
                    "With --prune: unused space to tolerate (5%, 500M, unlimited)")
        ->check(StringValidator(ValidateMaxUnused, "LIMIT"))
        ->capture_default_str();
  }
  {
    auto a = std::make_shared<RepoPruneArgs>();
    auto* cmd = AddCommand(repo, "prune", "Remove data that no snapshot needs any more",
                           "  hearth repo prune\n"
                           "  hearth repo prune --dry-run\n"
                           "  hearth repo prune --max-unused 0   # repack until nothing is unused",
                           g, rg, run, a, RunRepoPrune);
    cmd->add_flag("-n,--dry-run", a->dry_run, "Only show what would be removed");
    cmd->add_option("--max-unused", a->max_unused,
                    "Unused space to tolerate before repacking (5%, 500M, unlimited)")
        ->check(StringValidator(ValidateMaxUnused, "LIMIT"))
        ->capture_default_str();
  }
  {
    auto a = std::make_shared<RepoStatsArgs>();
    auto* cmd = AddCommand(repo, "stats", "Show how much data the snapshots hold",
                           "  hearth repo stats\n"
                           "  hearth repo stats --mode raw-data\n"
                           "  hearth repo stats latest --mode files-by-contents --json",
                           g, rg, run, a, RunRepoStats);
    cmd->add_option("SNAPSHOT", a->snapshots, "Only these snapshots (default: all)");
    cmd->add_option("--mode", a->mode,
                    "restore-size (default), raw-data, files-by-contents or blobs-per-file")
        ->check(CLI::IsMember({"restore-size", "raw-data", "files-by-contents", "blobs-per-file"}))
        ->capture_default_str();
  }
  {
    auto a = std::make_shared<RepoCopyArgs>();
    auto* cmd = AddCommand(
        repo, "copy", "Copy snapshots from another repository into this one",
        "  hearth repo -r sftp:nas:/tank/restic copy --from-repo /srv/backup/restic\n"
        "  hearth repo -r s3:https://storage.googleapis.com/bucket/restic copy \\\n"
        "      --from-repo /srv/backup/restic --from-password-file /etc/hearth/local.pw latest\n"
        "  hearth repo copy --from-repo /srv/a --host db --dry-run",
        g, rg, run, a, RunRepoCopy);
    cmd->add_option("SNAPSHOT", a->snapshots,
                    "Source snapshot IDs or \"latest\" (default: all that match the filter)");
    cmd->add_option("--from-repo", a->from_repo,
                    "Source repository (default: $HEARTH_FROM_REPOSITORY, then "
                    "$RESTIC_FROM_REPOSITORY)");
    cmd->add_option("--from-password-file", a->from_password_file,
                    "Read the source repository's password from FILE (also: "
                    "HEARTH_FROM_PASSWORD_FILE, RESTIC_FROM_PASSWORD_FILE, *_FROM_PASSWORD)");
    cmd->add_option("--from-password-command", a->from_password_command,
                    "Run CMD; the first line it prints is the source repository's password");
    cmd->add_option("--host", a->filter.hosts, "Only snapshots of this host (repeatable)")
        ->allow_extra_args(false);
    cmd->add_option("--tag", a->filter.tags, "Only snapshots with these tags (repeatable, a,b = both)")
        ->allow_extra_args(false);
    cmd->add_option("--path", a->filter.paths, "Only snapshots with this path (repeatable)")
        ->allow_extra_args(false);
    cmd->add_flag("-n,--dry-run", a->dry_run, "Only show what would be copied");
  }
  {
    auto a = std::make_shared<RepoUnlockArgs>();
    auto* cmd = AddCommand(repo, "unlock", "Remove stale locks (of processes that are gone)",
                           "  hearth repo unlock\n"
                           "  hearth repo unlock --remove-all   # only when nothing else runs",
                           g, rg, run, a, RunRepoUnlock);
    cmd->add_flag("--remove-all", a->remove_all, "Remove every lock, even of running processes");
  }
  {
    auto* key = repo->add_subcommand("key", "Manage the passwords (key files) of the repository");
    key->require_subcommand(1);
    key->fallthrough();
    key->footer(
        Footer("  hearth repo key list\n"
               "  hearth repo key add --new-password-file ~/.second-pw\n"
               "  hearth repo key passwd\n"
               "  hearth repo key remove 1a2b3c4d"));
    auto add_new_pw = [](CLI::App* cmd, RepoKeyArgs& a) {
      cmd->add_option("--new-password-file", a.new_password_file,
                      "Read the new password from FILE (default: ask twice on the terminal)");
    };
    {
      auto a = std::make_shared<RepoKeyArgs>();
      AddCommand(key, "list", "List the key files (* marks the one in use)",
                 "  hearth repo key list\n  hearth repo key list --json", g, rg, run, a,
                 RunRepoKeyList);
    }
    {
      auto a = std::make_shared<RepoKeyArgs>();
      auto* cmd = AddCommand(key, "add", "Add a password (a new key file for the same data)",
                             "  hearth repo key add\n"
                             "  hearth repo key add --new-password-file ~/.second-pw",
                             g, rg, run, a, RunRepoKeyAdd);
      add_new_pw(cmd, *a);
    }
    {
      auto a = std::make_shared<RepoKeyArgs>();
      auto* cmd = AddCommand(key, "remove", "Remove a key file (not the one in use)",
                             "  hearth repo key remove 1a2b3c4d", g, rg, run, a, RunRepoKeyRemove);
      cmd->add_option("ID", a->id, "The key's ID or a unique prefix (see key list)")->required();
    }
    {
      auto a = std::make_shared<RepoKeyArgs>();
      auto* cmd =
          AddCommand(key, "passwd", "Change the password (adds a new key, removes the current)",
                     "  hearth repo key passwd\n"
                     "  hearth repo key passwd --new-password-file ~/.new-pw",
                     g, rg, run, a, RunRepoKeyPasswd);
      add_new_pw(cmd, *a);
    }
  }
}

}  // namespace hearth::cli
