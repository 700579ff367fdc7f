"""Real-world reference data the tenant is drawn from: Apple models, OS builds, names, addresses."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Model:
    name: str  # as Kandji shows it in `model`
    identifier: str  # hardware model identifier
    platform: str  # Mac, iPhone, iPad, AppleTV
    processor: str = ""  # Macs only
    processor_speed: str = ""  # Intel Macs only; Apple silicon reports ""
    cores: int = 0
    memory: str = ""
    capacity_gb: float = 0  # storage as the device reports it
    weight: int = 1  # how common it is in a fleet
    abm_model: str = ""  # Apple Business Manager's spelling
    abm_description: str = ""


MODELS: tuple[Model, ...] = (
    Model(
        "MacBook Air (M1, 2020)",
        "MacBookAir10,1",
        "Mac",
        "Apple M1",
        "",
        8,
        "8 GB LPDDR4",
        228.27,
        6,
        "MacBook Air (13-inch, M1, 2020)",
        "MBA 13.3 SG/8C CPU/7C GPU/8GB/256GB-USA",
    ),
    Model(
        "MacBook Air (M2, 2022)",
        "Mac14,2",
        "Mac",
        "Apple M2",
        "",
        8,
        "16 GB LPDDR5",
        494.38,
        9,
        "MacBook Air (13-inch, M2, 2022)",
        "MBA 13.6 MDN/8C CPU/8C GPU/16GB/512GB-USA",
    ),
    Model(
        "MacBook Air (13-inch, M3, 2024)",
        "Mac15,12",
        "Mac",
        "Apple M3",
        "",
        8,
        "16 GB LPDDR5",
        494.38,
        7,
        "MacBook Air (13-inch, M3, 2024)",
        "MBA 13.6 MDN/8C CPU/10C GPU/16GB/512GB-USA",
    ),
    Model(
        "MacBook Pro (14-inch, 2023)",
        "Mac14,9",
        "Mac",
        "Apple M2 Pro",
        "",
        10,
        "16 GB LPDDR5",
        494.38,
        8,
        "MacBook Pro (14-inch, 2023)",
        "MBP 14 SG/10C CPU/16C GPU/16GB/512GB-USA",
    ),
    Model(
        "MacBook Pro (16-inch, 2023)",
        "Mac14,10",
        "Mac",
        "Apple M2 Pro",
        "",
        12,
        "32 GB LPDDR5",
        994.66,
        3,
        "MacBook Pro (16-inch, 2023)",
        "MBP 16 SG/12C CPU/19C GPU/32GB/1TB-USA",
    ),
    Model(
        "MacBook Pro (14-inch, M3, Nov 2023)",
        "Mac15,3",
        "Mac",
        "Apple M3",
        "",
        8,
        "16 GB LPDDR5",
        494.38,
        6,
        "MacBook Pro (14-inch, M3, Nov 2023)",
        "MBP 14 SG/8C CPU/10C GPU/16GB/512GB-USA",
    ),
    Model(
        "MacBook Pro (14-inch, M3 Pro or M3 Max, Nov 2023)",
        "Mac15,6",
        "Mac",
        "Apple M3 Pro",
        "",
        12,
        "36 GB LPDDR5",
        994.66,
        5,
        "MacBook Pro (14-inch, M3 Pro or M3 Max, Nov 2023)",
        "MBP 14 SB/12C CPU/18C GPU/36GB/1TB-USA",
    ),
    Model(
        "MacBook Pro (16-inch, 2021)",
        "MacBookPro18,2",
        "Mac",
        "Apple M1 Max",
        "",
        10,
        "32 GB LPDDR5",
        994.66,
        3,
        "MacBook Pro (16-inch, 2021)",
        "MBP 16 SG/10C CPU/32C GPU/32GB/1TB-USA",
    ),
    Model(
        "MacBook Pro (13-inch, 2020, Four Thunderbolt 3 ports)",
        "MacBookPro16,2",
        "Mac",
        "Quad-Core Intel Core i5",
        "2 GHz",
        4,
        "16 GB 3733 MHz LPDDR4X",
        494.38,
        2,
        "MacBook Pro (13-inch, 2020, Four Thunderbolt 3 ports)",
        "MBP 13.3 SG/2.0GHZ QC/16GB/512GB-USA",
    ),
    Model(
        "iMac (24-inch, M1, 2021)",
        "iMac21,1",
        "Mac",
        "Apple M1",
        "",
        8,
        "8 GB LPDDR4",
        228.27,
        2,
        "iMac (24-inch, M1, 2021)",
        "IMAC 24 BLU/8C CPU/8C GPU/8GB/256GB-USA",
    ),
    Model(
        "iMac (24-inch, M3, 2023)",
        "Mac15,5",
        "Mac",
        "Apple M3",
        "",
        8,
        "16 GB LPDDR5",
        494.38,
        2,
        "iMac (24-inch, M3, 2023)",
        "IMAC 24 SLV/8C CPU/10C GPU/16GB/512GB-USA",
    ),
    Model(
        "Mac mini (M2, 2023)",
        "Mac14,3",
        "Mac",
        "Apple M2",
        "",
        8,
        "8 GB LPDDR5",
        228.27,
        2,
        "Mac mini (2023)",
        "MAC MINI/8C CPU/10C GPU/8GB/256GB-USA",
    ),
    Model(
        "Mac Studio (2022)",
        "Mac13,1",
        "Mac",
        "Apple M1 Max",
        "",
        10,
        "32 GB LPDDR5",
        494.38,
        1,
        "Mac Studio (2022)",
        "MAC STUDIO/10C CPU/24C GPU/32GB/512GB-USA",
    ),
    Model("Virtual Machine", "VirtualMac2,1", "Mac", "Apple M1 (Virtual)", "", 4, "8 GB", 98.16, 1),
    Model(
        "iPhone 15 Pro",
        "iPhone16,1",
        "iPhone",
        capacity_gb=128.0,
        weight=5,
        abm_model="iPhone 15 Pro",
        abm_description="IPHONE 15 PRO 128GB NATURAL TITANIUM-USA",
    ),
    Model(
        "iPhone 15",
        "iPhone15,4",
        "iPhone",
        capacity_gb=128.0,
        weight=4,
        abm_model="iPhone 15",
        abm_description="IPHONE 15 128GB BLACK-USA",
    ),
    Model(
        "iPhone 14",
        "iPhone14,7",
        "iPhone",
        capacity_gb=128.0,
        weight=3,
        abm_model="iPhone 14",
        abm_description="IPHONE 14 128GB MIDNIGHT-USA",
    ),
    Model(
        "iPhone 13",
        "iPhone14,5",
        "iPhone",
        capacity_gb=128.0,
        weight=2,
        abm_model="iPhone 13",
        abm_description="IPHONE 13 128GB MIDNIGHT-USA",
    ),
    Model(
        "iPhone 16 Pro",
        "iPhone17,1",
        "iPhone",
        capacity_gb=256.0,
        weight=2,
        abm_model="iPhone 16 Pro",
        abm_description="IPHONE 16 PRO 256GB DESERT TITANIUM-USA",
    ),
    Model(
        "iPhone SE (3rd generation)",
        "iPhone14,6",
        "iPhone",
        capacity_gb=64.0,
        weight=2,
        abm_model="iPhone SE (3rd Generation)",
        abm_description="IPHONE SE 64GB MIDNIGHT-USA",
    ),
    Model(
        "iPhone 11 Pro Max",
        "iPhone12,5",
        "iPhone",
        capacity_gb=256.0,
        weight=1,
        abm_model="iPhone 11 Pro Max",
        abm_description="IPHONE 11 PRO MAX 256GB SPACE GRAY-USA",
    ),
    Model(
        "iPad Air (5th generation)",
        "iPad13,16",
        "iPad",
        capacity_gb=64.0,
        weight=3,
        abm_model="iPad Air (5th Generation)",
        abm_description="IPAD AIR WI-FI 64GB BLUE-USA",
    ),
    Model(
        "iPad (9th generation) (Wi-Fi)",
        "iPad12,1",
        "iPad",
        capacity_gb=64.0,
        weight=3,
        abm_model="iPad (9th Generation)",
        abm_description="IPAD WI-FI 64GB SPACE GRAY-USA",
    ),
    Model(
        "iPad (8th generation) (Wi-Fi)",
        "iPad11,6",
        "iPad",
        capacity_gb=128.0,
        weight=2,
        abm_model="iPad (8th Generation)",
        abm_description="IPAD WI-FI 128GB SILVER-USA",
    ),
    Model(
        "iPad Pro (11-inch) (4th generation)",
        "iPad14,3",
        "iPad",
        capacity_gb=256.0,
        weight=1,
        abm_model="iPad Pro 11-inch (4th Generation)",
        abm_description="IPAD PRO 11 WI-FI 256GB SPACE GRAY-USA",
    ),
    Model(
        "iPad mini (6th generation)",
        "iPad14,1",
        "iPad",
        capacity_gb=64.0,
        weight=1,
        abm_model="iPad mini (6th Generation)",
        abm_description="IPAD MINI WI-FI 64GB STARLIGHT-USA",
    ),
    Model(
        "Apple TV 4K (3rd generation)",
        "AppleTV14,1",
        "AppleTV",
        capacity_gb=128.0,
        weight=2,
        abm_model="Apple TV 4K (3rd Generation)",
        abm_description="APPLE TV 4K WI-FI + ETHERNET 128GB-USA",
    ),
    Model(
        "Apple TV 4K (2nd generation)",
        "AppleTV11,1",
        "AppleTV",
        capacity_gb=32.0,
        weight=1,
        abm_model="Apple TV 4K (2nd Generation)",
        abm_description="APPLE TV 4K 32GB-USA",
    ),
    Model(
        "Apple TV HD",
        "AppleTV5,3",
        "AppleTV",
        capacity_gb=32.0,
        weight=1,
        abm_model="Apple TV HD",
        abm_description="APPLE TV HD 32GB-USA",
    ),
)

# Of every 100 devices: mostly Macs, then iPhones, iPads, a few Apple TVs.
PLATFORM_WEIGHTS = {"Mac": 70, "iPhone": 15, "iPad": 11, "AppleTV": 4}

# (os_version, build, supplemental_os_version_extra); builds are Apple's real ones. The last entries
# with an extra are Rapid Security Responses (Kandji reports their build as the supplemental one).
OS_VERSIONS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "Mac": (
        ("13.4.1", "22F770820d", "(c)"),
        ("13.6.7", "22G720", ""),
        ("13.7", "22H123", ""),
        ("14.4.1", "23E224", ""),
        ("14.5", "23F79", ""),
        ("14.6.1", "23G93", ""),
        ("14.7", "23H124", ""),
        ("15.0", "24A335", ""),
        ("15.1", "24B83", ""),
        ("15.2", "24C101", ""),
        ("15.3", "24D60", ""),
        ("15.3.1", "24D70", ""),
        ("15.3.2", "24D81", ""),
        ("15.4", "24E248", ""),
    ),
    "iPhone": (
        ("16.5.1", "20F770750d", "(c)"),
        ("16.7.10", "20H350", ""),
        ("17.5.1", "21F90", ""),
        ("17.6.1", "21G93", ""),
        ("18.0", "22A3354", ""),
        ("18.1", "22B83", ""),
        ("18.2", "22C152", ""),
        ("18.3", "22D63", ""),
        ("18.3.1", "22D72", ""),
        ("18.3.2", "22D82", ""),
    ),
    "iPad": (
        ("16.7.10", "20H350", ""),
        ("17.5.1", "21F90", ""),
        ("17.6.1", "21G93", ""),
        ("18.1", "22B83", ""),
        ("18.2", "22C152", ""),
        ("18.3.1", "22D72", ""),
        ("18.3.2", "22D82", ""),
    ),
    "AppleTV": (
        ("17.6", "21M71", ""),
        ("18.0", "22J357", ""),
        ("18.1", "22J580", ""),
        ("18.2", "22K155", ""),
        ("18.3", "22K557", ""),
    ),
}

AGENT_VERSIONS = ("4.3.3 (4811)", "4.4.1 (4952)", "4.5.4 (5092)", "4.5.9 (5160)", "4.6.2 (5241)")

FIRST_NAMES = (
    "Aisha",
    "Alex",
    "Amara",
    "Ana",
    "Ben",
    "Carlos",
    "Chen",
    "Chloe",
    "Daniel",
    "David",
    "Elena",
    "Emma",
    "Fatima",
    "Felix",
    "Grace",
    "Hana",
    "Hiro",
    "Ines",
    "Isaac",
    "Jack",
    "Jamal",
    "Johnny",
    "Julia",
    "Kai",
    "Karin",
    "Lars",
    "Leila",
    "Liam",
    "Lucia",
    "Maya",
    "Mei",
    "Mohammed",
    "Nadia",
    "Noah",
    "Olga",
    "Omar",
    "Priya",
    "Rafael",
    "Ravi",
    "Sara",
    "Sofia",
    "Tom",
    "Wei",
    "Yuki",
    "Zoe",
)
LAST_NAMES = (
    "Abbott",
    "Andersson",
    "Bakker",
    "Costa",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Haddad",
    "Hughes",
    "Ivanova",
    "Jensen",
    "Kim",
    "Kowalski",
    "Lopez",
    "Martin",
    "Meyer",
    "Moreau",
    "Nakamura",
    "Nguyen",
    "Novak",
    "Okafor",
    "Olsen",
    "Patel",
    "Rossi",
    "Santos",
    "Schmidt",
    "Silva",
    "Singh",
    "Tanaka",
    "Vandelay",
    "Wagner",
    "Wang",
    "Weber",
    "Williams",
    "Yilmaz",
    "Zhang",
)

COMPANIES = ("accuhive", "northwind", "globex", "initech", "umbrella", "hooli", "vandelay", "acme")

BLUEPRINT_NAMES = (
    ("Standard Mac", "classic"),
    ("Engineering Macs", "map"),
    ("Executives", "classic"),
    ("Field iPhones", "classic"),
    ("Shared iPads", "map"),
    ("Conference Rooms (tvOS)", "classic"),
    ("_testing_something", "map"),
)

# (name, type as Kandji's library items report it)
LIBRARY_ITEMS = (
    ("GitHub", "vpp-app"),
    ("Apple Configurator", "vpp-app"),
    ("Apple Developer", "vpp-app"),
    ("Pocket Casts: Podcast Player", "vpp-app"),
    ("Microsoft Authenticator", "vpp-app"),
    ("Okta Verify", "vpp-app"),
    ("Slack for Desktop", "auto-app"),
    ("Google Chrome", "auto-app"),
    ("Zoom", "auto-app"),
    ("1Password 8", "auto-app"),
    ("Microsoft Company Portal", "auto-app"),
    ("homebrew", "custom-script"),
    ("agent_debug_logging", "custom-script"),
    ("Internal CA Installer", "custom-app"),
    ("Kandji Self Service", "kandji-self-service"),
    ("office_wifi", "wifi"),
    ("wallpaper", "custom-profile"),
    ("pppc_finder", "custom-profile"),
    ("microsoft_sso_extension_mobile", "custom-profile"),
    ("FileVault", "filevault"),
    ("Passcode Policy", "passcode"),
    ("Screen Saver", "screensaver"),
    ("Software Update Enforcement", "managed-os"),
)

TAG_NAMES = ("finance", "engineering", "sales", "support", "loaner", "byod", "lab", "vip", "remote")

BLUEPRINT_PARAMETERS = (
    "Disable Guest account",
    "Require FileVault",
    "Enable firewall",
    "Set screen saver password",
    "Disable AirDrop",
    "Enforce automatic updates",
    "Disable remote login",
)

ADMIN_ROLES = ("admin", "standard", "helpdesk", "auditor")

DIRECTORY_INTEGRATIONS = ("Okta", "Google Workspace", "Microsoft Entra ID")

# Client addresses for audit metadata: MaxMind's test-database ranges (enrichment tests know
# the answers), well-known public addresses in several countries, and private ones (no geo data).
PUBLIC_IPS = (
    "81.2.69.142",  # GB, MaxMind test data
    "89.160.20.112",  # SE, MaxMind test data
    "216.160.83.56",  # US, MaxMind test data
    "2.125.160.216",  # GB, MaxMind test data
    "67.43.156.1",  # MaxMind test data (anonymous / hosting)
    "1.128.0.1",  # AU, MaxMind test data
    "149.101.100.1",  # US, MaxMind test data
    "175.16.199.1",  # CN, MaxMind test data
    "2001:480::1",  # US, MaxMind test data (IPv6)
    "8.8.8.8",  # US, Google
    "1.1.1.1",  # AU/global, Cloudflare
    "185.199.108.1",  # GitHub (Fastly)
    "200.160.2.3",  # BR, NIC.br
    "133.11.0.1",  # JP, University of Tokyo
    "193.0.6.139",  # NL, RIPE NCC
    "196.216.2.1",  # MU, AFRINIC
    "203.119.101.61",  # AU, APNIC
    "151.101.1.69",  # Fastly
    "52.95.110.1",  # US, Amazon
)
PRIVATE_IPS = ("10.0.4.17", "10.20.30.40", "192.168.1.76", "192.168.50.12", "172.16.5.9")

BROWSER_USER_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/133.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.3 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:135.0) Gecko/20100101 Firefox/135.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/133.0.0.0 Safari/537.36 Edg/133.0.0.0",
)
API_USER_AGENTS = (
    "python-requests/2.32.3",
    "curl/8.7.1",
    "python-httpx/0.28.1",
    "Go-http-client/2.0",
)

SYSTEM_USERS = (
    ("_lp", "26", "/var/spool/cups"),
    ("_ard", "67", "/var/empty"),
    ("_mbsetupuser", "248", "/var/setup"),
    ("_spotlight", "89", "/var/empty"),
    ("daemon", "1", "/var/root"),
    ("nobody", "-2", "/var/empty"),
    ("root", "0", "/var/root"),
)

MAC_PROFILES = (
    ("MDM Profile", "com.kandji.profile.mdmprofile", ("com.apple.mdm", "com.apple.security.scep")),
    (
        "Kandji Agent Settings",
        "com.kandji.profile.pppc",
        (
            "com.apple.TCC.configuration-profile-policy",
            "com.apple.notificationsettings",
            "com.apple.servicemanagement",
            "com.apple.system-extension-policy",
            "io.kandji.extensions",
        ),
    ),
    ("SCEP for Okta Device Trust", "com.kandji.profile.odt.scep", ("com.apple.security.scep",)),
    ("Wi-Fi - office_wifi", "com.kandji.profile.wifi", ("com.apple.wifi.managed",)),
    (
        "FileVault",
        "com.kandji.profile.filevault",
        ("com.apple.MCX.FileVault2", "com.apple.security.FDERecoveryKeyEscrow"),
    ),
)
MOBILE_PROFILES = (
    ("MDM Profile", "com.kandji.profile.mdmprofile", ("com.apple.mdm", "com.apple.security.scep")),
    ("Passcode Policy", "com.kandji.profile.passcode", ("com.apple.mobiledevice.passwordpolicy",)),
)

ABM_COLORS = ("SILVER", "SPACE GRAY", "MIDNIGHT", "STARLIGHT", "BLUE")

LOST_MODE_MESSAGES = (
    "This device has been reported lost. Please call the number below.",
    "Property of IT. If found, please contact the help desk.",
)
