// make-images: deterministic generator of realistic-looking test photos.
//
//   make-images --out DIR --count N [--width W --height H | --megapixels M]
//               [--format jpeg|png|webp] [--quality Q] [--seed S]
//               [--prefix NAME] [--mixed] [--jobs J]
//               [--progress | --no-progress]
//
// Defaults: 4000x3000 (12 MP) JPEG, 10 images, seed 1, prefix "photo",
// quality chosen per image in 85..90, one job per core. Files are
// <prefix>NNNN.<ext>. --megapixels M: a 4:3 landscape of about M MP.
// --mixed: per-image aspect variants of the same pixel count.
// Progress ("12/100 images, 34.5 MB, 3.1 s") goes to stderr, on one
// rewritten line when stderr is a terminal; --progress prints it also when
// it is not (a line a second at most), --no-progress never.
//
// The same arguments always give byte-identical files (with the same libvips
// and codec libraries): every random choice derives from (seed, index), and
// the libvips generators used (perlin, worley, gaussnoise) are functions of
// their seed and the pixel position only, so threading does not matter.
//
// Content, so that codecs see something like a photo: a smooth "scene" of
// several Perlin octaves, Worley cells and a sky gradient, coloured through
// a per-image palette, rendered at 1/4 resolution and upscaled (cheap, and
// photos are smooth at that scale anyway), plus full-resolution luma and
// chroma grain (sensor noise) which gives JPEG its realistic 2-5 MB at 12 MP.
//
// Each file is written to a hidden temporary name in DIR and renamed into
// place, so readers never see a partial image.

#include <vips/vips8>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "worker/orc_guard.h"

using vips::VImage;

namespace {

struct Args {
    std::string out;
    int count = 10;
    int width = 4000;
    int height = 3000;
    double megapixels = 0;
    bool size_given = false;
    std::string format = "jpeg";
    int quality = -1;  // -1: per image, 85..90
    uint64_t seed = 1;
    std::string prefix = "photo";
    bool mixed = false;
    int jobs = 0;  // 0: automatic
    int progress = -1;  // -1: when stderr is a terminal; 0: never; 1: always
};

[[noreturn]] void usage(const std::string &msg) {
    // No message: --help, to stdout and success; else an error.
    FILE *out = msg.empty() ? stdout : stderr;
    if (!msg.empty())
        std::fprintf(stderr, "make-images: %s\n", msg.c_str());
    std::fprintf(out,
        "usage: make-images --out DIR [--count N] [--width W --height H | --megapixels M]\n"
        "                   [--format jpeg|png|webp] [--quality Q] [--seed S]\n"
        "                   [--prefix NAME] [--mixed] [--jobs J]\n"
        "                   [--progress | --no-progress]\n");
    if (msg.empty())
        std::fprintf(out,
            "Writes N deterministic test photos <prefix>NNNN.<ext> into DIR.\n"
            "Defaults: --count 10, 4000x3000 (12 MP), --format jpeg, quality 85..90 per image,\n"
            "--seed 1, --prefix photo, --jobs = cores. Progress on stderr when it is a terminal\n"
            "(--progress: always, --no-progress: never).\n");
    std::exit(msg.empty() ? 0 : 2);
}

long long parse_int(const std::string &opt, const std::string &v, long long lo, long long hi) {
    char *end = nullptr;
    errno = 0;
    long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end || errno || x < lo || x > hi)
        usage(opt + ": expected an integer in [" + std::to_string(lo) + ", " +
              std::to_string(hi) + "], got '" + v + "'");
    return x;
}

double parse_double(const std::string &opt, const std::string &v, double lo, double hi) {
    char *end = nullptr;
    errno = 0;
    double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end || errno || !(x >= lo && x <= hi))
        usage(opt + ": expected a number in [" + std::to_string(lo) + ", " +
              std::to_string(hi) + "], got '" + v + "'");
    return x;
}

Args parse_args(int argc, char **argv) {
    Args a;
    bool have_w = false, have_h = false;
    for (int i = 1; i < argc; i++) {
        std::string opt = argv[i];
        std::string val;
        bool inline_val = false;
        if (auto eq = opt.find('='); opt.rfind("--", 0) == 0 && eq != std::string::npos) {
            val = opt.substr(eq + 1);
            opt = opt.substr(0, eq);
            inline_val = true;
        }
        auto next = [&]() -> std::string {
            if (inline_val)
                return val;
            if (i + 1 >= argc)
                usage(opt + " needs a value");
            return argv[++i];
        };
        if (opt == "--help" || opt == "-h")
            usage("");
        else if (opt == "--out")
            a.out = next();
        else if (opt == "--count")
            a.count = int(parse_int(opt, next(), 0, 1000000));
        else if (opt == "--width")
            a.width = int(parse_int(opt, next(), 1, 100000)), have_w = true;
        else if (opt == "--height")
            a.height = int(parse_int(opt, next(), 1, 100000)), have_h = true;
        else if (opt == "--megapixels")
            a.megapixels = parse_double(opt, next(), 1e-6, 1000);
        else if (opt == "--format") {
            a.format = next();
            if (a.format == "jpg")
                a.format = "jpeg";
            if (a.format != "jpeg" && a.format != "png" && a.format != "webp")
                usage("--format must be jpeg, png or webp");
        } else if (opt == "--quality")
            a.quality = int(parse_int(opt, next(), 1, 100));
        else if (opt == "--seed")
            a.seed = uint64_t(parse_int(opt, next(), 0, INT64_MAX));
        else if (opt == "--prefix") {
            a.prefix = next();
            if (a.prefix.find('/') != std::string::npos)
                usage("--prefix must not contain '/'");
        } else if (opt == "--mixed" && !inline_val)
            a.mixed = true;
        else if (opt == "--progress" && !inline_val)
            a.progress = 1;
        else if (opt == "--no-progress" && !inline_val)
            a.progress = 0;
        else if (opt == "--jobs")
            a.jobs = int(parse_int(opt, next(), 1, 256));
        else
            usage("unknown argument '" + std::string(argv[i]) + "'");
    }
    if (a.out.empty())
        usage("--out DIR is required");
    if (have_w != have_h)
        usage("--width and --height go together");
    if (have_w && a.megapixels > 0)
        usage("give either --width/--height or --megapixels");
    if (a.megapixels > 0) {
        // 4:3 landscape of about that many pixels.
        a.width = std::max(1, int(std::lround(std::sqrt(a.megapixels * 1e6 * 4.0 / 3.0))));
        a.height = std::max(1, int(std::lround(a.width * 3.0 / 4.0)));
    }
    if (a.format == "webp" && (a.width > 16383 || a.height > 16383))
        usage("webp is limited to 16383 pixels a side");
    return a;
}

// splitmix64: a small, well-mixed, portable hash for deriving seeds.
uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// Deterministic stream of values for one image.
struct Rng {
    uint64_t state;
    Rng(uint64_t seed, uint64_t index) : state(mix(mix(seed) ^ mix(index + 0x51ed27))) {}
    uint64_t next() { return state = mix(state); }
    int seed32() { return int(int32_t(uint32_t(next()))); }
    double uniform(double lo, double hi) { return lo + (hi - lo) * double(next() >> 11) / double(1ULL << 53); }
    int below(int n) { return int(next() % uint64_t(n)); }
};

struct Palette {
    double base[3];  // colour at mid luminance, 0..1
    double gain[3];  // how strongly each band follows luminance
};

// Rough scene moods: foliage, sky/sea, sunset, urban grey, sand/desert, dusk.
const Palette kPalettes[] = {
    {{0.32, 0.42, 0.22}, {0.80, 0.95, 0.60}},
    {{0.35, 0.50, 0.65}, {0.70, 0.85, 1.00}},
    {{0.62, 0.40, 0.28}, {1.00, 0.80, 0.65}},
    {{0.45, 0.46, 0.48}, {0.95, 0.95, 0.95}},
    {{0.70, 0.58, 0.40}, {0.90, 0.85, 0.70}},
    {{0.30, 0.28, 0.45}, {0.75, 0.70, 1.00}},
};

// Reports finished images on stderr: a line rewritten in place on a
// terminal (at most 10 times a second), else a line a second at most.
// Thread-safe; silent when disabled.
class Progress {
public:
    Progress(int total, int mode) : total_(total), tty_(isatty(STDERR_FILENO) == 1),
        enabled_(mode == 1 || (mode == -1 && tty_)), start_(Clock::now()), last_(start_) {}

    void Done(long long bytes) {
        if (!enabled_)
            return;
        std::lock_guard<std::mutex> lock(mu_);
        done_++, bytes_ += bytes;
        auto now = Clock::now();
        if (done_ < total_ && now - last_ < (tty_ ? std::chrono::milliseconds(100) : std::chrono::seconds(1)))
            return;
        last_ = now;
        Print(now, done_ == total_);
    }

    /// Ends a rewritten line that stopped short (an error).
    void Abandon() {
        std::lock_guard<std::mutex> lock(mu_);
        if (enabled_ && tty_ && done_ > 0 && done_ < total_)
            std::fputc('\n', stderr);
    }

private:
    using Clock = std::chrono::steady_clock;

    void Print(Clock::time_point now, bool last) {
        double s = std::chrono::duration<double>(now - start_).count();
        std::fprintf(stderr, "%smake-images: %d/%d images, %.1f MB, %.1f s%s", tty_ ? "\r" : "",
                     done_, total_, double(bytes_) / 1e6, s, tty_ && !last ? "" : "\n");
        std::fflush(stderr);
    }

    const int total_;
    const bool tty_, enabled_;
    const Clock::time_point start_;
    std::mutex mu_;
    Clock::time_point last_;
    int done_ = 0;
    long long bytes_ = 0;
};

struct Plan {
    int index;
    int width, height;
    int quality;
    std::string path;
};

// Pixel-count preserving aspect variants for --mixed.
void mixed_size(int index, int w, int h, int &ow, int &oh) {
    double area = double(w) * h;
    double longer = std::max(w, h), shorter = std::min(w, h);
    double ratio = longer / shorter;  // e.g. 4/3
    switch (index % 4) {
    case 0: ow = int(longer), oh = int(shorter); return;          // landscape
    case 1: ow = int(shorter), oh = int(longer); return;          // portrait
    case 2: ow = oh = int(std::lround(std::sqrt(area))); return;  // square
    default: {                                                    // wider
        double r = std::max(ratio, 1.0) * 4.0 / 3.0;
        ow = int(std::lround(std::sqrt(area * r)));
        oh = int(std::lround(std::sqrt(area / r)));
    }
    }
    ow = std::max(ow, 1);
    oh = std::max(oh, 1);
}

// The smooth scene, w x h, 3-band uchar. `factor` is how many full-resolution
// pixels one scene pixel stands for (cell sizes are given at full res).
VImage scene(Rng &rng, int w, int h, double factor) {
    // Cell sizes in full-resolution pixels, amplitudes falling per octave.
    const double cells[] = {1100, 420, 150, 56, 20};
    const double amps[] = {1.0, 0.55, 0.30, 0.16, 0.09};

    auto perlin = [&](double cell_full) {
        int cell = std::max(2, int(std::lround(cell_full / factor)));
        return VImage::perlin(w, h, VImage::option()->set("cell_size", cell)->set("seed", rng.seed32()));
    };

    VImage fbm = perlin(cells[0]) * amps[0];
    for (int k = 1; k < 5; k++)
        fbm = fbm + perlin(cells[k]) * amps[k];

    // Worley cells (pebbles, leaves, cobbles), faded in and out by a mask.
    // Worley is the slow generator, so it runs at half this resolution.
    int ww = (w + 1) / 2 + 1, wh = (h + 1) / 2 + 1;
    int wcell = std::max(2, int(std::lround(rng.uniform(90, 260) / (factor * 2))));
    VImage cells_img = VImage::worley(ww, wh, VImage::option()->set("cell_size", wcell)->set("seed", rng.seed32()))
                           .resize(2, VImage::option()->set("kernel", VIPS_KERNEL_LINEAR))
                           .crop(0, 0, w, h);
    VImage mask = perlin(900) + 0.3;
    VImage texture = (cells_img * (1.0 / wcell) - 0.5) * mask * 0.6;

    // Sky gradient: lighter towards the top, of varying strength.
    VImage y = VImage::xyz(w, h)[1] * (1.0 / h);
    double sky = rng.uniform(0.0, 0.45);
    VImage lum = fbm * 0.55 + texture + (0.5 - y) * sky;

    // Colour: palette plus slow, independent drift per band.
    const Palette &p = kPalettes[rng.below(int(std::size(kPalettes)))];
    double tint = rng.uniform(0.85, 1.15);
    double contrast = rng.uniform(0.7, 1.1);
    std::vector<VImage> bands;
    for (int b = 0; b < 3; b++) {
        VImage drift = perlin(rng.uniform(500, 1500));
        VImage band = lum * (p.gain[b] * contrast) + drift * 0.12 + p.base[b] * (b == 1 ? 1.0 : tint);
        bands.push_back(band * 255.0);
    }
    return VImage::bandjoin(bands).cast(VIPS_FORMAT_UCHAR);
}

// Sensor grain: a few 3-band signed-char noise tiles of different strength,
// made once per run (from --seed only) by a small portable generator, and
// laid over each image at a random offset. The tile is large and of odd size,
// so the repeat is invisible; a codec cannot tell it from fresh noise.
struct Grain {
    static constexpr int kW = 1531, kH = 1153;
    static constexpr double kSigma[] = {4.5, 6.0, 7.5};
    std::vector<VImage> tiles;

    explicit Grain(uint64_t seed) {
        uint64_t s = mix(seed ^ 0x6a09e667f3bcc908ULL);
        auto u = [&s]() {  // xorshift64*, uniform in [0, 1)
            s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
            return double((s * 0x2545f4914f6cdd1dULL) >> 11) / double(1ULL << 53);
        };
        // Irwin-Hall(4): close enough to Gaussian for grain, unit variance.
        auto gauss = [&u]() { return (u() + u() + u() + u() - 2.0) * 1.7320508075688772; };
        size_t n = size_t(kW) * kH;
        std::vector<float> luma(n), chroma(n * 3);
        for (auto &v : luma)
            v = float(gauss());
        for (auto &v : chroma)
            v = float(gauss());
        for (double sigma : kSigma) {
            std::vector<int8_t> px(n * 3);
            for (size_t i = 0; i < n; i++)
                for (int b = 0; b < 3; b++) {
                    double v = sigma * (luma[i] + 0.4 * chroma[i * 3 + b]);
                    px[i * 3 + b] = int8_t(std::clamp(std::lround(v), -127L, 127L));
                }
            // _copy: the tile must own its pixels (px goes away).
            VipsImage *im = vips_image_new_from_memory_copy(px.data(), px.size(), kW, kH, 3, VIPS_FORMAT_CHAR);
            if (!im)
                throw vips::VError();
            tiles.push_back(VImage(im));
        }
    }

    // Grain of w x h for one image.
    VImage over(Rng &rng, int w, int h) const {
        const VImage &t = tiles[size_t(rng.below(int(tiles.size())))];
        int x0 = rng.below(kW), y0 = rng.below(kH);
        int across = (x0 + w + kW - 1) / kW, down = (y0 + h + kH - 1) / kH;
        return t.replicate(across, down).crop(x0, y0, w, h);
    }
};

VImage render(const Plan &plan, const Grain &grain, uint64_t seed) {
    Rng rng(seed, uint64_t(plan.index));
    int W = plan.width, H = plan.height;

    // Render the smooth part at 1/4 size and upscale: Perlin at full 12 MP is
    // slow and adds nothing a codec notices. Nearest-neighbour zoom plus a
    // Gaussian blur is a smooth upscale at a fraction of resize()'s cost.
    int factor = (std::min(W, H) >= 64) ? 4 : 1;
    int lw = (W + factor - 1) / factor, lh = (H + factor - 1) / factor;
    VImage img = scene(rng, lw, lh, factor);
    if (factor > 1)
        img = img.zoom(factor, factor)
                  .gaussblur(0.45 * factor, VImage::option()->set("precision", VIPS_PRECISION_INTEGER));
    img = img.crop(0, 0, W, H);

    // uchar + char is computed in short; the cast back clips to 0..255.
    img = (img + grain.over(rng, W, H)).cast(VIPS_FORMAT_UCHAR);
    return img.copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_sRGB));
}

void save(const VImage &img, const Args &a, const Plan &plan, const std::string &tmp) {
    if (a.format == "jpeg")
        img.jpegsave(tmp.c_str(), VImage::option()
                                      ->set("Q", plan.quality)
                                      ->set("strip", true)
                                      ->set("interlace", false)
                                      ->set("optimize_coding", false));
    else if (a.format == "png")
        img.pngsave(tmp.c_str(), VImage::option()->set("strip", true)->set("interlace", false)->set("compression", 6));
    else
        img.webpsave(tmp.c_str(), VImage::option()->set("Q", plan.quality)->set("strip", true));
}

bool make_dirs(const std::string &dir) {
    std::string cur;
    size_t pos = 0;
    while (pos != std::string::npos) {
        pos = dir.find('/', pos + 1);
        cur = dir.substr(0, pos);
        if (cur.empty())
            continue;
        if (mkdir(cur.c_str(), 0777) != 0 && errno != EEXIST)
            return false;
    }
    struct stat st;
    return stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Generates everything; returns the process exit code. All images are gone
// by the time it returns, so main can shut libvips down.
int generate(const Args &a) {
    // Nothing is reused between images; the cache would only hold memory.
    vips_cache_set_max(0);

    const char *ext = a.format == "jpeg" ? "jpg" : a.format.c_str();
    int digits = std::max(4, int(std::to_string(std::max(a.count - 1, 0)).size()));
    std::vector<Plan> plans;
    for (int i = 0; i < a.count; i++) {
        Plan p;
        p.index = i;
        p.width = a.width, p.height = a.height;
        if (a.mixed)
            mixed_size(i, a.width, a.height, p.width, p.height);
        // Quality from its own stream so it never shifts the image content.
        p.quality = a.quality > 0 ? a.quality : 85 + int(mix(mix(a.seed) + 0x7a11 + uint64_t(i)) % 6);
        char name[32];
        std::snprintf(name, sizeof name, "%0*d", std::min(digits, 12), i);
        p.path = a.out + "/" + a.prefix + name + "." + ext;
        plans.push_back(p);
    }

    // On small machines a codec pass is single threaded, so one image per
    // core beats one image at a time; libvips threads fill in per pipeline.
    unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    int jobs = a.jobs > 0 ? a.jobs : int(cores);
    jobs = std::max(1, std::min(jobs, a.count));
    if (!std::getenv("VIPS_CONCURRENCY"))
        vips_concurrency_set(std::max(1, int(cores) / jobs));

    const Grain grain(a.seed);
    std::atomic<int> next{0};
    std::atomic<bool> failed{false};
    std::atomic<long long> total_bytes{0};
    std::mutex err_mu;
    Progress progress(a.count, a.progress);
    auto worker = [&]() {
        for (;;) {
            int i = next.fetch_add(1);
            if (i >= a.count || failed)
                break;
            const Plan &p = plans[size_t(i)];
            std::string tmp = a.out + "/." + a.prefix + std::to_string(i) + ".tmp." + std::to_string(getpid());
            try {
                VImage img = render(p, grain, a.seed);
                save(img, a, p, tmp);
                if (std::rename(tmp.c_str(), p.path.c_str()) != 0)
                    throw std::runtime_error("rename " + tmp + " -> " + p.path + ": " + std::strerror(errno));
                struct stat st;
                long long size = stat(p.path.c_str(), &st) == 0 ? st.st_size : 0;
                total_bytes += size;
                progress.Done(size);
            } catch (const std::exception &e) {
                ::unlink(tmp.c_str());
                std::lock_guard<std::mutex> lock(err_mu);
                if (!failed.exchange(true)) {
                    progress.Abandon();
                    std::fprintf(stderr, "make-images: %s: %s\n", p.path.c_str(), e.what());
                }
            }
            vips_thread_shutdown();
        }
    };
    std::vector<std::thread> threads;
    for (int t = 1; t < jobs; t++)
        threads.emplace_back(worker);
    worker();
    for (auto &t : threads)
        t.join();

    if (failed)
        return 1;
    std::printf("wrote %d images to %s (%.1f MB)\n", a.count, a.out.c_str(), double(total_bytes) / 1e6);
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    if (VIPS_INIT(argv[0]))
        vips_error_exit(nullptr);
    // Several threads render at once: liborc 0.4.33 needs the guard.
    if (!thumbmill::orc_guard_installed()) {
        std::fprintf(stderr, "make-images: libvips's calls into liborc bypass worker/orc_guard.cc\n");
        return 1;
    }
    Args a = parse_args(argc, argv);
    if (!make_dirs(a.out)) {
        std::fprintf(stderr, "make-images: cannot create directory %s: %s\n", a.out.c_str(), std::strerror(errno));
        return 1;
    }
    int rc;
    try {
        rc = generate(a);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "make-images: %s\n", e.what());
        rc = 1;
    }
    std::fflush(stdout);
    vips_shutdown();
    return rc;
}
