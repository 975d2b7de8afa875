"""The moderation permissions, and the "Moderators" group that holds them.

Moderators see every instance, report and review entry, exclude and include instances, re-process and
dismiss review entries, and read the moderation log; they cannot delete anything (superusers can).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "Moderators"
# (model, codenames) in the reports app.
PERMISSIONS = {
    "instance": ["view_instance", "moderate_instance"],
    "submission": ["view_submission"],
    "project": ["view_project"],
    "workflow": ["view_workflow"],
    "reviewitem": ["view_reviewitem", "review_report"],
    "moderationlog": ["view_moderationlog"],
}


def create_moderators_group(apps, schema_editor):
    # Permissions are normally created by post_migrate, after every migration has run; the group needs
    # them now. create_permissions skips app configs without a models module, which the migration
    # state's app configs never have, hence the flag.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    db = schema_editor.connection.alias
    group, _ = Group.objects.using(db).get_or_create(name=GROUP)
    for model, codenames in PERMISSIONS.items():
        permissions = Permission.objects.using(db).filter(
            content_type__app_label="reports", content_type__model=model, codename__in=codenames
        )
        if len(permissions) != len(codenames):
            raise RuntimeError(f"missing permissions for reports.{model}: {codenames}")
        group.permissions.add(*permissions)


def delete_moderators_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0002_cache_table"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="instance",
            options={"permissions": [("moderate_instance", "Can exclude and include instances")]},
        ),
        migrations.AlterModelOptions(
            name="reviewitem",
            options={
                "ordering": ["-received_at"],
                "permissions": [("review_report", "Can re-process and dismiss review entries")],
                "verbose_name": "review queue entry",
                "verbose_name_plural": "review queue",
            },
        ),
        migrations.RunPython(create_moderators_group, delete_moderators_group),
    ]
