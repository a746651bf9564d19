//! # courses: a learning platform built only on the orgwall kernel
//!
//! Four tenant tables (courses, their lessons, enrollments in a course, a lesson's assets),
//! each row owned by exactly one organization, with CRUD routes behind the kernel's HTTP
//! wall. Nothing here names an org in SQL or trusts one from input: the kernel's table
//! gateway binds it from the verified scope, the database wall (forced row-level security
//! on PostgreSQL, scoped views and guards on SQLite) would hide another org's rows anyway,
//! and another org's id answers 404 as if it did not exist.

use orgwall_core::{Permission, PermissionDef, SystemRole};
use orgwall_tenancy::migrate::Migration;
use orgwall_tenancy::rows::{Column, Kind, Table};
use orgwall_tenancy::{Cascade, Catalog, Module, Plane};
use orgwall_tenancy_http::resource::{self, Resource};
use orgwall_tenancy_http::{openapi, problem, routes, Kernel};

/// Read courses, lessons, enrollments and assets.
pub const COURSES_READ: Permission = Permission::new("courses:read");
/// Create, change and delete courses, lessons and assets.
pub const COURSES_WRITE: Permission = Permission::new("courses:write");
/// Enroll learners and record completion.
pub const ENROLLMENTS_MANAGE: Permission = Permission::new("enrollments:manage");

/// The service's one module: its migrations, tables, cascades and permissions.
pub static MODULE: Module = Module {
    name: "courses",
    postgres: &[Migration {
        version: 1,
        name: "courses",
        sql: include_str!("../migrations/postgres/0001_courses.sql"),
        plane: Plane::Data,
    }],
    sqlite: &[Migration {
        version: 1,
        name: "courses",
        sql: include_str!("../migrations/sqlite/0001_courses.sql"),
        plane: Plane::Data,
    }],
    tenant_tables: &["courses", "lessons", "enrollments", "assets"],
    cascades: &[
        Cascade {
            parent: "courses",
            child: "lessons",
            column: "course_id",
        },
        Cascade {
            parent: "courses",
            child: "enrollments",
            column: "course_id",
        },
        Cascade {
            parent: "lessons",
            child: "assets",
            column: "lesson_id",
        },
    ],
    permissions: &[
        PermissionDef::new(
            COURSES_READ,
            SystemRole::Viewer,
            "Read courses and their content",
        ),
        PermissionDef::new(
            COURSES_WRITE,
            SystemRole::Member,
            "Write courses, lessons and assets",
        ),
        PermissionDef::new(ENROLLMENTS_MANAGE, SystemRole::Admin, "Enroll learners"),
    ],
    ..Module::EMPTY
};

/// The kernel's catalog with this service registered.
pub fn catalog() -> Catalog {
    Catalog::new().with(&MODULE)
}

static COURSES: Table = Table {
    name: "courses",
    columns: &[
        Column::required("title", Kind::Text),
        Column::optional("summary", Kind::Text),
    ],
};
static LESSONS: Table = Table {
    name: "lessons",
    columns: &[
        Column::required("course_id", Kind::Ref),
        Column::required("title", Kind::Text),
        Column::optional("body", Kind::Text),
        Column::optional("position", Kind::Int),
    ],
};
static ENROLLMENTS: Table = Table {
    name: "enrollments",
    columns: &[
        Column::required("course_id", Kind::Ref),
        Column::required("learner", Kind::Text),
        Column::optional("completed", Kind::Bool),
    ],
};
static ASSETS: Table = Table {
    name: "assets",
    columns: &[
        Column::required("lesson_id", Kind::Ref),
        Column::required("name", Kind::Text),
        Column::required("url", Kind::Text),
    ],
};

macro_rules! resource {
    ($ty:ident, $table:ident, $path:literal, $kind:literal, $read:ident, $write:ident) => {
        struct $ty;
        impl Resource for $ty {
            const TABLE: &'static Table = &$table;
            const PATH: &'static str = $path;
            const KIND: &'static str = $kind;
            const READ: Permission = $read;
            const WRITE: Permission = $write;
        }
    };
}
resource!(
    Courses,
    COURSES,
    "/courses",
    "course",
    COURSES_READ,
    COURSES_WRITE
);
resource!(
    Lessons,
    LESSONS,
    "/lessons",
    "lesson",
    COURSES_READ,
    COURSES_WRITE
);
resource!(
    Enrollments,
    ENROLLMENTS,
    "/enrollments",
    "enrollment",
    COURSES_READ,
    ENROLLMENTS_MANAGE
);
resource!(
    Assets,
    ASSETS,
    "/assets",
    "asset",
    COURSES_READ,
    COURSES_WRITE
);

const INFO: openapi::Info = openapi::Info {
    title: "courses",
    version: env!("CARGO_PKG_VERSION"),
    description: "A learning platform on the orgwall kernel. Org routes: /v1/orgs/{org}/... and /v1/... with X-Organization-Id.",
};

/// The service: every route behind the kernel's wall, and the OpenAPI document of them.
pub fn app(kernel: Kernel) -> axum::Router {
    let mut all = resource::routes::<Kernel, Courses>();
    all.extend(resource::routes::<Kernel, Lessons>());
    all.extend(resource::routes::<Kernel, Enrollments>());
    all.extend(resource::routes::<Kernel, Assets>());
    let mut specs: Vec<_> = all.iter().map(|r| r.spec).collect();
    specs.push(&openapi::OPENAPI);
    all.push(openapi::route(&INFO, &specs));
    routes::install(&kernel, all)
        .fallback(problem::not_found_fallback)
        .with_state(kernel)
}
